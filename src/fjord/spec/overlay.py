"""Layering partial specs: environment overrides and dynamic config on top of ``fjord.yaml``.

The rule is Helm's: mappings merge key by key, everything else (lists, scalars) is replaced, and
``null`` deletes a key. So an override can change ``replicas.max`` alone, add one ``env`` entry,
or drop one with ``env: {DEBUG: null}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from fjord.spec.app import AppSpec
from fjord.spec.errors import Problem, SpecError
from fjord.spec.validation import problems_from

NOT_OVERRIDABLE = frozenset({"org", "app", "environments"})
"""An override may not change the app's identity, nor nest further environments."""


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` on top of ``base`` without modifying either (see the module docstring)."""
    merged = dict(base)
    for key, value in overlay.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class Overlay:
    """A partial spec and where it came from (used in error messages)."""

    source: str
    values: Mapping[str, Any]


def base_document(spec: AppSpec) -> dict[str, Any]:
    """The spec as a plain document (defaults filled in) that overlays merge onto."""
    return spec.model_dump(mode="json", by_alias=True, exclude={"environments"})


def apply_overlays(spec: AppSpec, overlays: Sequence[Overlay]) -> AppSpec:
    """The spec with every overlay applied in order; a bad overlay raises :class:`SpecError`."""
    if not any(o.values for o in overlays):
        return spec
    document = base_document(spec)
    for overlay in overlays:
        forbidden = sorted(NOT_OVERRIDABLE.intersection(overlay.values))
        if forbidden:
            raise SpecError(
                [Problem(overlay.source, 0, forbidden[0], "cannot be overridden per environment")]
            )
        document = deep_merge(document, overlay.values)
    try:
        return AppSpec.model_validate(document)
    except ValidationError as exc:
        source = " < ".join(o.source for o in overlays if o.values)
        raise SpecError(problems_from(exc, AppSpec, document, source)) from None


def spec_for_environment(spec: AppSpec, environment: str, extra: Sequence[Overlay] = ()) -> AppSpec:
    """The effective spec in ``environment``: base < ``environments.<env>`` < ``extra``."""
    own = Overlay(f"environments.{environment}", spec.environments.get(environment, {}))
    return apply_overlays(spec, [own, *extra])
