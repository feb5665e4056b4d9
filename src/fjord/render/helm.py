"""Render an app's own Helm chart in-process with helm-python-sdk (real Helm, no binary).

The chart is copied into a private staging directory first, because:

* ``file://`` dependencies must be placed under ``charts/`` for Helm to see them (Helm silently
  renders without a missing dependency), and we must not write into the app's checkout;
* symlinks must not pull in files from outside the chart (a repository is untrusted input);
* the size of what we feed to Helm is bounded.

Only vendored (``charts/``) and ``file://`` dependencies are allowed: a release is rendered
offline and must be reproducible.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import yaml

from fjord.render import names
from fjord.render.errors import RenderError
from fjord.render.routing import route_path
from fjord.spec.app import AppSpec
from fjord.spec.overlay import deep_merge
from fjord.spec.platform import PlatformConfig
from fjord.yamllimits import (
    YamlLimitError,
    YamlLimits,
    check_depth,
    check_expansion,
    may_have_aliases,
    read_bounded,
    safe_load_bounded,
)

MAX_CHART_BYTES = 16 * 1024 * 1024
MAX_CHART_FILES = 2000
MAX_OUTPUT_BYTES = 8 * 1024 * 1024
# What a chart renders is untrusted too: aliases are bounded by expanded values, not bytes.
OUTPUT_LIMITS = YamlLimits(max_bytes=MAX_OUTPUT_BYTES, max_nodes=2_000_000)
CHART_YAML_LIMITS = YamlLimits(max_bytes=1024 * 1024, max_nodes=100_000)
FACTS_KEY = "fjord"

# Template functions whose result changes from one render to the next (sprig's random, time,
# key and salted-hash functions). A chart using any of them is rendered twice and refused if
# the two renders differ: a release must be the same bytes every time it is built.
_VOLATILE = re.compile(
    r"\b(rand[A-Z]\w*|randInt|uuidv4|now|date|dateInZone|htmlDate|htmlDateInZone|unixEpoch|ago"
    r"|genPrivateKey|genCA|genCAWithKey|genSelfSignedCert|genSelfSignedCertWithKey|genSignedCert"
    r"|genSignedCertWithKey|derivePassword|encryptAES|bcrypt|htpasswd|shuffle)\b"
)
# A cheap first test: any text calling a volatile function contains one of these substrings
# or words ("now", "date", "ago" only as words: "RollingUpdate" is in nearly every chart).
_VOLATILE_HINTS = (
    "rand",
    "uuidv4",
    "Date",
    "Epoch",
    "genPrivateKey",
    "genCA",
    "genS",
    "derivePassword",
    "encryptAES",
    "bcrypt",
    "htpasswd",
    "shuffle",
)
_VOLATILE_WORDS = re.compile(r"\b(?:now|date|ago)\b")
_ACTIONS = re.compile(r"\{\{.*?\}\}", re.DOTALL)  # template actions, where functions are called
_TEMPLATE_LOCATION = re.compile(r"([\w.-]+(?:/[\w.-]+)*\.(?:ya?ml|tpl|txt|json)):(\d+)")

try:
    _BaseLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment,misc,unused-ignore]
except AttributeError:  # pragma: no cover
    _BaseLoader = yaml.SafeLoader

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type,unused-ignore]
    """SafeLoader with a shortcut for plain maps, lists and strings.

    Parsing what charts render is a third of a Helm-chart build; nearly every node is one of
    those three, and building them directly skips SafeConstructor's per-node bookkeeping. The
    result equals ``yaml.safe_load``'s (merge keys included); other scalars (ints, bools, nulls,
    timestamps) and any node that does not fit take SafeConstructor's own path.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        try:
            data = self._build(node)
        except TypeError:  # an unhashable key: let SafeConstructor report it properly
            return super().construct_document(node)
        self.constructed_objects.clear()
        self.recursive_objects.clear()
        return data

    def _build(self, node: yaml.Node) -> Any:
        tag = node.tag
        if tag == _STR and isinstance(node, yaml.ScalarNode):
            return node.value
        if tag == _SEQ and isinstance(node, yaml.SequenceNode):
            return [self._build(item) for item in node.value]
        if tag == _MAP and isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)  # merge keys (<<), as construct_mapping does
            return {self._build(key): self._build(value) for key, value in node.value}
        return self.construct_object(node, deep=True)


@dataclass(frozen=True)
class RenderedTemplate:
    template: str  # e.g. "mychart/templates/deployment.yaml"
    object: dict[str, Any]


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class _Budget:
    """What staging a chart has taken so far, and the volatile functions its templates call
    (found while copying, so the files are read once)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.files = 0
        self.volatile: set[str] = set()

    def scan(self, data: bytes) -> None:
        text = data.decode("utf-8", errors="replace")
        if any(hint in text for hint in _VOLATILE_HINTS) or _VOLATILE_WORDS.search(text):
            for block in _ACTIONS.findall(text):
                self.volatile.update(_VOLATILE.findall(block))

    def take(self, size: int, where: str) -> None:
        self.bytes += size
        self.files += 1
        if self.bytes > MAX_CHART_BYTES or self.files > MAX_CHART_FILES:
            raise RenderError(
                f"{where}: the chart is too large (limit {MAX_CHART_FILES} files, "
                f"{MAX_CHART_BYTES // (1024 * 1024)} MiB)"
            )


def _copy_tree(source: Path, dest: Path, display: str, budget: _Budget) -> None:
    """Copy ``source`` to ``dest``, refusing symlinks that leave ``source``."""
    root = source.resolve()
    for directory, subdirs, files in os.walk(source, followlinks=False):
        here = Path(directory)
        target = dest / here.relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        for name in list(subdirs) + files:
            entry = here / name
            relative = f"{display}/{entry.relative_to(source)}"
            if entry.is_symlink():
                if not _inside(entry.resolve(), root):
                    raise RenderError(
                        f"{relative}: symlink points outside the chart directory",
                        hint="charts must be self-contained; copy the file instead",
                        file=relative,
                    )
                if name in subdirs:  # os.walk does not descend into linked dirs: copy them here
                    _copy_tree(entry.resolve(), target / name, relative, budget)
                    continue
            if name in files:
                _copy_file(entry, target / name, relative, budget)


def _copy_file(entry: Path, target: Path, relative: str, budget: _Budget) -> None:
    try:
        data = read_bounded(entry, MAX_CHART_BYTES, relative)  # a FIFO or device is refused
    except YamlLimitError as exc:
        raise RenderError(exc.message, hint=exc.hint, file=relative) from None
    budget.take(len(data), relative)
    target.write_bytes(data)
    if "templates" in Path(relative).parts[:-1]:
        budget.scan(data)


def _dependencies(chart_dir: Path, display: str) -> list[dict[str, Any]]:
    file = f"{display}/Chart.yaml"
    try:
        text = read_bounded(chart_dir / "Chart.yaml", CHART_YAML_LIMITS.max_bytes, file)
        metadata = safe_load_bounded(text, file, CHART_YAML_LIMITS)
    except FileNotFoundError:
        raise RenderError(f"{display}/Chart.yaml: missing; not a Helm chart") from None
    except YamlLimitError as exc:
        raise RenderError(str(exc.message), hint=exc.hint, file=file) from None
    except OSError as exc:
        raise RenderError(f"{file}: cannot read: {exc.strerror}", file=file) from None
    except yaml.YAMLError as exc:
        raise RenderError(f"{display}/Chart.yaml: malformed YAML: {exc}") from None
    deps = metadata.get("dependencies") if isinstance(metadata, dict) else None
    return [d for d in deps or [] if isinstance(d, dict)]


def _vendored(charts: Path, name: str) -> bool:
    return (charts / name).is_dir() or any(charts.glob(f"{name}-*.tgz"))


def _stage(source: Path, dest: Path, repo_root: Path, display: str, budget: _Budget) -> None:
    _copy_tree(source, dest, display, budget)
    for dep in _dependencies(source, display):
        name = str(dep.get("name", ""))
        repository = str(dep.get("repository") or "")
        if not name or _vendored(dest / "charts", name):
            continue
        if not repository.startswith("file://"):
            raise RenderError(
                f"{display}/Chart.yaml: dependency {name!r} from {repository or '(no repository)'}"
                " is not vendored",
                hint="vendor it under charts/ or use a file:// dependency; releases render offline",
                file=f"{display}/Chart.yaml",
            )
        dep_dir = (source / repository.removeprefix("file://")).resolve()
        if not _inside(dep_dir, repo_root):
            raise RenderError(
                f"{display}/Chart.yaml: dependency {name!r} ({repository}) is outside the "
                "app's repository",
                file=f"{display}/Chart.yaml",
            )
        if not dep_dir.is_dir():
            raise RenderError(f"{display}/Chart.yaml: dependency {name!r}: {repository} not found")
        _stage(dep_dir, dest / "charts" / name, repo_root, f"{display}/charts/{name}", budget)


def _differing(first: Mapping[str, str], second: Mapping[str, str]) -> list[str]:
    return sorted(t for t in set(first) | set(second) if first.get(t) != second.get(t))


def chart_directory(app_dir: Path, spec: AppSpec) -> Path:
    """The chart's directory, checked to lie inside the app's repository."""
    assert spec.chart is not None
    root = app_dir.resolve()
    chart_dir = (app_dir / spec.chart.path).resolve()
    if not _inside(chart_dir, root):
        raise RenderError(
            f"chart.path {spec.chart.path!r} points outside the app's repository",
            file=spec.chart.path,
        )
    if not chart_dir.is_dir():
        raise RenderError(f"chart.path {spec.chart.path!r}: no such directory")
    return chart_dir


def platform_facts(spec: AppSpec, environment: str, platform: PlatformConfig) -> dict[str, Any]:
    """What a chart may want to know; injected under ``fjord:`` if its values.yaml has that key."""
    secrets: dict[str, Any] = {}
    if spec.maskinporten:
        secrets["maskinporten"] = names.maskinporten_secret(spec)
    if spec.postgresql:
        secrets["postgresql"] = {
            d.name: names.database_secret(spec, d.name) for d in spec.postgresql.databases
        }
    if spec.redis:
        secrets["redis"] = names.redis_secret(spec)
    facts: dict[str, Any] = {
        "org": spec.org,
        "app": spec.app,
        "environment": environment,
        "namespace": spec.namespace,
        "host": platform.app_host(spec.org, environment),
        "path": route_path(spec),
        # Charts cannot ask the cluster which route kinds exist (no capabilities in-process),
        # so fjord tells them the platform's flavour: traefik, gateway or ingress.
        "routing": platform.routing.flavour,
        "port": spec.port,
        "secrets": secrets,
        "labels": names.labels(spec),
    }
    if spec.image:
        facts["image"] = spec.image
    return facts


def _load_all(template: str, text: str) -> list[Any]:
    """``yaml.load_all`` with the fast loader, within :data:`OUTPUT_LIMITS`."""
    check_depth(text, template, OUTPUT_LIMITS.max_depth)
    aliases = may_have_aliases(text)
    loader = _Loader(text)
    documents = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if aliases:
                check_expansion(node, template, OUTPUT_LIMITS.max_nodes)
            documents.append(loader.construct_document(node))
    finally:
        loader.dispose()
    return documents


def _parse(template: str, text: str) -> list[RenderedTemplate]:
    try:
        documents = _load_all(template, text)
    except YamlLimitError as exc:
        raise RenderError(exc.message, hint=exc.hint, file=template) from None
    except yaml.YAMLError as exc:
        raise RenderError(
            f"{template}: rendered output is not valid YAML: {exc}", file=template
        ) from None
    found = []
    for document in documents:
        if document is None:
            continue
        if not isinstance(document, dict) or not document.get("kind"):
            raise RenderError(f"{template}: rendered a document that is not a Kubernetes object")
        found.append(RenderedTemplate(template, document))
    return found


def _wanted(template: str, text: str) -> bool:
    parts = template.split("/")
    if parts[-1] == "NOTES.txt" or "tests" in parts[:-1] or parts[-1].startswith("_"):
        return False
    return bool(text.strip())


def _helm_error(exc: helm_python.HelmError, chart: str) -> RenderError:
    detail = exc.detail.strip()
    if isinstance(exc, helm_python.HelmValuesError):
        return RenderError(
            f"chart {chart}: values rejected: {detail}",
            hint="the chart's values.schema.json rejects the layered values",
            file=f"{chart}/values.schema.json",
        )
    match = _TEMPLATE_LOCATION.search(detail)
    file = f"{match.group(1)}:{match.group(2)}" if match else None
    return RenderError(f"chart {chart}: {detail}", file=file)


class ChartRenderer:
    """Renders an app's chart for each environment, staging and loading each chart once.

    An app is rendered for every environment in one build; staging (copy + checks) and loading
    the chart cost as much as rendering it, so they happen on first use of a chart directory
    and are reused for the other environments. Use as a context manager: the staged copies and
    loaded charts are released on exit.
    """

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._charts: dict[Path, tuple[helm_python.Chart, list[str]]] = {}

    def __enter__(self) -> ChartRenderer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def _load(
        self, app_dir: Path, spec: AppSpec, display: str
    ) -> tuple[helm_python.Chart, list[str]]:
        source = chart_directory(app_dir, spec)
        loaded = self._charts.get(source)
        if loaded is None:
            tmp = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="fjord-chart-"))
            staged = Path(tmp) / "chart"
            budget = _Budget()
            _stage(source, staged, app_dir.resolve(), display, budget)
            chart = self._stack.enter_context(helm_python.Chart.load(staged))
            loaded = self._charts[source] = (chart, sorted(budget.volatile))
        return loaded

    def render(
        self, app_dir: Path, spec: AppSpec, environment: str, platform: PlatformConfig
    ) -> list[RenderedTemplate]:
        """Render for one environment (``spec`` is already layered for it)."""
        assert spec.chart is not None
        display = spec.chart.path.rstrip("/")
        try:
            chart, volatile = self._load(app_dir, spec, display)
            values: dict[str, Any] = dict(spec.chart.values)
            if FACTS_KEY in (chart.values or {}):  # None when the chart has no values.yaml
                facts = platform_facts(spec, environment, platform)
                values = deep_merge(values, {FACTS_KEY: facts})
            manifests = chart.render(
                values, name=spec.app, namespace=spec.namespace, is_install=True
            )
            if volatile:
                again = chart.render(
                    values, name=spec.app, namespace=spec.namespace, is_install=True
                )
        except helm_python.HelmError as exc:
            raise _helm_error(exc, display) from None
        if volatile:
            _refuse_if_volatile(manifests, again, volatile)
        return _collect(manifests)


def render_chart(
    app_dir: Path,
    spec: AppSpec,
    environment: str,
    platform: PlatformConfig,
) -> list[RenderedTemplate]:
    """Render the app's chart for one environment (``spec`` is already layered for it)."""
    with ChartRenderer() as renderer:
        return renderer.render(app_dir, spec, environment, platform)


def _refuse_if_volatile(
    first: Mapping[str, str], second: Mapping[str, str], functions: list[str]
) -> None:
    changed = [t for t in _differing(first, second) if _wanted(t, first.get(t) or second[t])]
    if changed:
        raise RenderError(
            f"{changed[0]}: renders differently each time (the chart uses"
            f" {', '.join(functions)}); changed between two renders: {', '.join(changed)}",
            hint="a release must be the same bytes on every build: derive values from inputs"
            " (e.g. sha256sum of a value), or let an operator generate secrets in the cluster",
            file=changed[0],
        )


def _collect(manifests: Mapping[str, str]) -> list[RenderedTemplate]:
    total = 0
    rendered: list[RenderedTemplate] = []
    for template in sorted(manifests):
        text = manifests[template]
        if not _wanted(template, text):
            continue
        total += len(text)
        if total > MAX_OUTPUT_BYTES:
            raise RenderError(
                f"{template}: the chart renders more than {MAX_OUTPUT_BYTES // 1024 // 1024} MiB",
                file=template,
            )
        rendered.extend(_parse(template, text))
    return rendered
