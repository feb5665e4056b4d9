"""Load ``fjord.yaml`` and platform config files into validated models, or fail with every
problem located by ``file:line: field.path``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from fjord.spec.app import AppSpec
from fjord.spec.errors import Problem, SpecError, format_path
from fjord.spec.overlay import NOT_OVERRIDABLE, base_document, deep_merge
from fjord.spec.platform import PlatformConfig, default_platform
from fjord.spec.validation import located_errors
from fjord.spec.yamlsource import MAX_SPEC_BYTES, Located, limit_problem, parse_yaml
from fjord.yamllimits import YamlLimitError, read_bounded

M = TypeVar("M", bound=BaseModel)


def _validate(model: type[M], located: Located) -> tuple[M | None, list[Problem]]:
    if not isinstance(located.data, dict):
        found = type(located.data).__name__
        return None, [located.problem((), f"expected a mapping at the top level, found {found}")]
    try:
        return model.model_validate(located.data), []
    except ValidationError as exc:
        problems = [
            located.problem(path, message, hint)
            for path, message, hint in located_errors(exc, model, located.data)
        ]
        return None, problems


def load_model(model: type[M], located: Located) -> M:
    """Validate parsed YAML as ``model``; raise :class:`SpecError` with located problems."""
    value, problems = _validate(model, located)
    if value is None:
        raise SpecError(problems)
    return value


def _environment_problems(
    located: Located, spec: AppSpec | None, environment: str, overlay: object
) -> list[Problem]:
    """Problems an environment override causes once merged onto the base spec."""
    where = ("environments", environment)
    if not isinstance(overlay, Mapping):
        return [located.problem(where, "must be a mapping of fields to override")]
    problems = [
        located.problem((*where, key), "cannot be overridden per environment")
        for key in sorted(NOT_OVERRIDABLE.intersection(overlay))
    ]
    if problems:
        return problems
    if spec is not None:
        base = base_document(spec)
    else:  # the base is invalid (reported already): still check what the overlay itself says
        base = {k: v for k, v in located.data.items() if k != "environments"}
    merged = deep_merge(base, overlay)
    try:
        AppSpec.model_validate(merged)
    except ValidationError as exc:
        for path, message, hint in located_errors(exc, AppSpec, merged):
            if located.has((*where, *path)):
                problems.append(located.problem((*where, *path), message, hint))
            elif spec is not None:  # caused by the combination: report it at the override
                problems.append(
                    Problem(
                        located.file,
                        located.line_of(where),
                        format_path(where),
                        f"{format_path(path)}: {message}",
                        hint,
                    )
                )
    return problems


VERSION_PLACEHOLDER = "{version}"


def _fill_image(located: Located, version: str | None, image: str | None) -> list[Problem]:
    """Put the release's image into the document: ``image`` replaces the spec's everywhere
    (top level and every environment), ``version`` fills a ``{version}`` placeholder."""
    data = located.data
    if not isinstance(data, dict):
        return []
    places: list[tuple[tuple[str, ...], dict[str, Any]]] = [(("image",), data)]
    environments = data.get("environments")
    if isinstance(environments, dict):
        places += [
            (("environments", str(name), "image"), overlay)
            for name, overlay in environments.items()
            if isinstance(overlay, dict)
        ]
    problems = []
    for path, holder in places:
        if image is not None and (holder is data or "image" in holder):
            holder["image"] = image
        value = holder.get("image")
        if not isinstance(value, str) or VERSION_PLACEHOLDER not in value:
            continue
        if version is None:
            problems.append(
                located.problem(
                    path,
                    f"{value!r} takes {VERSION_PLACEHOLDER} from the release's tag, and this "
                    "build has no tag",
                    "build from a tag (--ref v1.4.0), or name the image (--image)",
                )
            )
        else:
            holder["image"] = value.replace(VERSION_PLACEHOLDER, version)
    return problems


def parse_app_spec(
    text: str | bytes,
    file: str = "fjord.yaml",
    *,
    version: str | None = None,
    image: str | None = None,
) -> AppSpec:
    """Parse and validate a ``fjord.yaml`` document, including its environment overrides.

    ``version`` fills ``{version}`` in ``image:`` (from the tag a release is built from);
    ``image`` replaces the spec's image outright (CI naming the image it just pushed).
    """
    located = parse_yaml(text, file)
    filled = _fill_image(located, version, image)
    if filled:
        raise SpecError(filled)
    spec, problems = _validate(AppSpec, located)
    if isinstance(located.data, dict):
        environments: Any = located.data.get("environments")
        if isinstance(environments, dict):
            for name, overlay in environments.items():
                problems += _environment_problems(located, spec, str(name), overlay)
    if problems or spec is None:
        raise SpecError(problems)
    return spec


def load_app_spec(path: str | Path) -> AppSpec:
    """Read ``fjord.yaml`` (or a directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "fjord.yaml"
    return parse_app_spec(_read(path), str(path))


def parse_platform(text: str | bytes, file: str = "platform.yaml") -> PlatformConfig:
    return load_model(PlatformConfig, parse_yaml(text, file))


def load_platform(path: str | Path | None = None) -> PlatformConfig:
    """The platform config at ``path``, or the embedded demo platform when ``path`` is None."""
    if path is None:
        return default_platform()
    return parse_platform(_read(Path(path)), str(path))


def _read(path: Path) -> bytes:
    try:
        return read_bounded(path, MAX_SPEC_BYTES)
    except YamlLimitError as exc:
        raise limit_problem(exc) from None
    except OSError as exc:
        raise SpecError([Problem(str(path), 0, "", f"cannot read: {exc.strerror}")]) from None
