"""Dynamic config: settings that live in the control plane's database, not in git.

Shape of ``values`` (every part optional)::

    common:                 # a partial fjord.yaml applied in every environment
      env: {FEATURE_X: "on"}
    environments:
      production:           # a partial fjord.yaml for one environment
        replicas: {min: 3, max: 10}
        maskinporten: {scopes: ["altinn:serviceowner/instances.read"]}
        chart: {values: {ingress: {enabled: false}}}

It layers on top of ``fjord.yaml`` and its ``environments`` overrides with the same merge rules
(maps merge, lists replace, null deletes), so anything a spec says can be changed per environment
without a commit. ``version`` is recorded in the release, so a release pins its dynamic config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fjord.spec.errors import Problem, SpecError
from fjord.spec.overlay import Overlay

_EMPTY: Mapping[str, Any] = {}


@dataclass(frozen=True)
class DynamicConfig:
    version: int = 0
    values: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        source = f"dynamic config v{self.version}"
        unknown = sorted(set(self.values) - {"common", "environments"})
        if unknown:
            raise SpecError(
                [Problem(source, 0, unknown[0], "unknown key", "expected common or environments")]
            )
        for key in ("common", "environments"):
            if not isinstance(self.values.get(key, _EMPTY), Mapping):
                raise SpecError([Problem(source, 0, key, "must be a mapping")])

    def overlays(self, environment: str) -> list[Overlay]:
        """The overlays this config contributes in ``environment``, lowest precedence first."""
        source = f"dynamic config v{self.version}"
        common = self.values.get("common", _EMPTY)
        per_env = self.values.get("environments", _EMPTY).get(environment, _EMPTY)
        if not isinstance(per_env, Mapping):
            raise SpecError(
                [Problem(source, 0, f"environments.{environment}", "must be a mapping")]
            )
        return [
            Overlay(f"{source} common", common),
            Overlay(f"{source} environments.{environment}", per_env),
        ]


NO_DYNAMIC_CONFIG = DynamicConfig()
