"""JSON Schema of ``fjord.yaml`` and of the platform config (for editors and ``fjord schema``).

Environment overrides are partial specs, so their schema is a copy of the spec's in which no
field is required and the identity fields are absent.
"""

from __future__ import annotations

import copy
from typing import Any

from fjord.spec.app import AppSpec
from fjord.spec.overlay import NOT_OVERRIDABLE
from fjord.spec.platform import PlatformConfig

_PARTIAL = "Partial"


def _nullable(node: Any) -> Any:
    return {"anyOf": [_partial(node), {"type": "null"}]}


def _partial(node: Any) -> Any:
    """``node`` with every ``required`` dropped and every ``$ref`` pointing at a partial def.

    Every field may also be ``null``, which deletes it when the override is merged.
    """
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("properties", "patternProperties"):
                out[key] = {name: _nullable(sub) for name, sub in value.items()}
            elif key == "additionalProperties" and isinstance(value, dict):
                out[key] = _nullable(value)
            elif key != "required":
                out[key] = _partial(value)
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            out["$ref"] = ref + _PARTIAL
        return out
    if isinstance(node, list):
        return [_partial(v) for v in node]
    return node


def app_spec_schema() -> dict[str, Any]:
    schema = AppSpec.model_json_schema(by_alias=True)
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    for name, definition in list(defs.items()):
        defs[name + _PARTIAL] = _partial(definition)
    override = _partial({k: v for k, v in schema.items() if k not in ("$defs", "$schema")})
    override["title"] = "EnvironmentOverride"
    for key in NOT_OVERRIDABLE:
        override["properties"].pop(key, None)
    override.pop("description", None)
    environments = schema["properties"]["environments"]
    environments["patternProperties"] = dict.fromkeys(environments["patternProperties"], override)
    environments["additionalProperties"] = False
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def platform_schema() -> dict[str, Any]:
    schema = copy.deepcopy(PlatformConfig.model_json_schema(by_alias=True))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
