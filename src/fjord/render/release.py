"""The render entry point: one app → manifests for every target environment.

Output layout (what ``fjord.artifact`` packs)::

    tt02/app1.yaml         # every object of the app in tt02, infra resources included
    production/app1.yaml

Each environment gets its own directory so that promotion re-points an environment at the same
artifact bytes. Values layer, lowest first: chart defaults < ``fjord.yaml`` (``chart.values``)
< ``environments.<env>`` < dynamic config ``common`` < dynamic config ``environments.<env>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fjord import __version__
from fjord.render import names
from fjord.render.checks import Item, check_objects
from fjord.render.errors import CheckError, RenderError
from fjord.render.helm import ChartRenderer
from fjord.render.infra import infra_objects
from fjord.render.platform_chart import platform_objects
from fjord.render.podsecurity import policy_for
from fjord.render.yamlout import dump
from fjord.spec.app import AppSpec
from fjord.spec.dynamic import NO_DYNAMIC_CONFIG, DynamicConfig
from fjord.spec.loader import load_app_spec
from fjord.spec.overlay import spec_for_environment
from fjord.spec.platform import PlatformConfig, default_platform

BUILDER = f"fjord/{__version__}"

_KIND_ORDER = {
    kind: index
    for index, kind in enumerate(
        (
            "ServiceAccount",
            "ConfigMap",
            "Secret",
            "PersistentVolumeClaim",
            "AppCredentials",
            "MaskinportenClient",
            "Service",
            "Deployment",
            "StatefulSet",
            "Job",
            "CronJob",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "NetworkPolicy",
        )
    )
}


@dataclass(frozen=True)
class RenderedRelease:
    """The rendered manifests of one app for every target environment."""

    org: str
    app: str
    namespace: str
    environments: tuple[str, ...]
    dynamic_version: int
    builder: str
    files: dict[str, bytes] = field(repr=False)  # relative path → bytes, sorted by path

    def manifest(self, environment: str) -> bytes:
        return self.files[environment_file(environment, self.app)]


def environment_file(environment: str, app: str) -> str:
    return f"{environment}/{app}.yaml"


def _order(obj: dict[str, Any]) -> tuple[int, str, str, str]:
    kind = str(obj.get("kind", ""))
    name = str((obj.get("metadata") or {}).get("name", ""))
    return (_KIND_ORDER.get(kind, len(_KIND_ORDER)), kind, str(obj.get("apiVersion", "")), name)


def _adopt(obj: dict[str, Any], spec: AppSpec, environment: str) -> dict[str, Any]:
    """Put a chart's object in the app's namespace and give it fjord's labels."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return obj  # the checks report it
    metadata.setdefault("namespace", spec.namespace)
    labels = metadata.get("labels")
    labels = dict(labels) if isinstance(labels, dict) else {}
    for key, value in names.labels(spec).items():
        labels.setdefault(key, value)
    metadata["labels"] = labels
    return obj


def _environment_objects(
    spec: AppSpec,
    environment: str,
    platform: PlatformConfig,
    app_dir: Path | None,
    charts: ChartRenderer,
) -> list[tuple[str, dict[str, Any]]]:
    """(source, object) pairs: source is the chart template, or "" for the platform chart."""
    if spec.chart is None:
        found = [("", obj) for obj in platform_objects(spec, environment, platform)]
    else:
        if app_dir is None:
            raise RenderError(f"{spec.org}/{spec.app}: a chart app needs its directory to render")
        found = [
            (t.template, _adopt(t.object, spec, environment))
            for t in charts.render(app_dir, spec, environment, platform)
        ]
    found += [("", obj) for obj in infra_objects(spec, environment)]
    return sorted(found, key=lambda pair: _order(pair[1]))


def _targets(spec: AppSpec, platform: PlatformConfig, wanted: Sequence[str] | None) -> list[str]:
    known = platform.environment_names
    unknown = sorted(set(spec.environments) - set(known)) + sorted(set(wanted or ()) - set(known))
    if unknown:
        raise RenderError(
            f"{spec.org}/{spec.app}: unknown environment {unknown[0]!r}",
            hint=f"the platform's environments are {', '.join(known)}",
        )
    return [name for name in known if wanted is None or name in wanted]


def render_spec(
    spec: AppSpec,
    *,
    app_dir: Path | None = None,
    platform: PlatformConfig | None = None,
    dynamic: DynamicConfig = NO_DYNAMIC_CONFIG,
    environments: Sequence[str] | None = None,
    check: bool = True,
) -> RenderedRelease:
    """Render an already-loaded spec; ``app_dir`` is needed only when it has its own chart.

    Raises ``SpecError`` (bad overrides or dynamic config), ``RenderError`` and ``CheckError``.
    """
    platform = platform or default_platform()
    targets = _targets(spec, platform, environments)
    files: dict[str, bytes] = {}
    items: list[Item] = []
    with ChartRenderer() as charts:
        for environment in targets:
            effective = spec_for_environment(spec, environment, dynamic.overlays(environment))
            path = environment_file(environment, spec.app)
            texts = []
            for source, obj in _environment_objects(
                effective, environment, platform, app_dir, charts
            ):
                text = dump(obj)
                texts.append(text)
                where = f"{path} (from {source})" if source else path
                items.append(Item(where, obj, text))
            files[path] = "".join("---\n" + t for t in texts).encode()
    if check:
        policy = policy_for(platform, spec.org, spec.app)
        failures = check_objects(items, spec.namespace, platform.kubernetes_version, policy=policy)
        if failures:
            raise CheckError(failures)
    return RenderedRelease(
        org=spec.org,
        app=spec.app,
        namespace=spec.namespace,
        environments=tuple(targets),
        dynamic_version=dynamic.version,
        builder=BUILDER,
        files=dict(sorted(files.items())),
    )


def render_app(
    app_dir: str | Path,
    *,
    platform: PlatformConfig | None = None,
    dynamic: DynamicConfig = NO_DYNAMIC_CONFIG,
    environments: Sequence[str] | None = None,
    check: bool = True,
) -> RenderedRelease:
    """Load ``app_dir/fjord.yaml`` and render it (see :func:`render_spec`)."""
    app_dir = Path(app_dir)
    spec = load_app_spec(app_dir / "fjord.yaml")
    return render_spec(
        spec,
        app_dir=app_dir,
        platform=platform,
        dynamic=dynamic,
        environments=environments,
        check=check,
    )
