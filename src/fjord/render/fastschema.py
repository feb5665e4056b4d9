"""A fast yes/no answer to "is this object valid against this schema?" for the common case.

The pre-publish checks validate every rendered object against its (fully resolved) Kubernetes
schema, and for valid objects — nearly all of them — jsonschema spends most of a release build
walking the schema. :func:`compile_schema` turns a schema into plain Python closures that answer
only *whether* an object is valid, with the same meaning as ``jsonschema.Draft7Validator`` (no
format checker), for the keywords the resolved Kubernetes, CRD and route schemas use. Any node
that uses another Draft 7 keyword is handed to jsonschema itself, so the answer is always
jsonschema's. When the answer is "invalid", the caller asks jsonschema for the error messages.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable
from typing import Any

import jsonschema

Check = Callable[[Any], bool]

# Every keyword Draft 7 validates; other keys (x-kubernetes-*, nullable, description …) are
# ignored by jsonschema, and so here.
_DRAFT7 = frozenset(jsonschema.Draft7Validator.VALIDATORS)
_HANDLED = frozenset(
    {
        "type",
        "properties",
        "additionalProperties",
        "required",
        "items",
        "oneOf",
        "anyOf",
        "pattern",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "format",  # a no-op without a format checker, as the checks' validators have none
    }
)


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": _is_integer,
    "number": _is_number,
}


def _always(_: Any) -> bool:
    return True


def _never(_: Any) -> bool:
    return False


def _delegate(schema: Any) -> Check:
    return jsonschema.Draft7Validator(schema).is_valid


def _type_check(declared: Any) -> Check | None:
    names = [declared] if isinstance(declared, str) else declared
    if not isinstance(names, list) or not all(isinstance(n, str) and n in _TYPES for n in names):
        return None
    if len(names) == 1:
        return _TYPES[names[0]]
    checks = [_TYPES[n] for n in names]
    return lambda v: any(check(v) for check in checks)


def compile_schema(schema: Any) -> Check:
    """A function answering whether an instance is valid against ``schema`` (Draft 7)."""
    if schema is True:
        return _always
    if schema is False:
        return _never
    if not isinstance(schema, dict):
        return _delegate(schema)
    keywords = schema.keys() & _DRAFT7
    if not keywords:
        return _always
    if keywords - _HANDLED:
        return _delegate(schema)

    type_check: Check | None = None
    if "type" in schema:
        type_check = _type_check(schema["type"])
        if type_check is None:
            return _delegate(schema)

    # Objects.
    properties_schema = schema.get("properties", {})
    additional = schema.get("additionalProperties", True)
    required = schema.get("required", [])
    if (
        not isinstance(properties_schema, dict)
        or not isinstance(required, list)
        or not (isinstance(additional, (bool, dict)))
    ):
        return _delegate(schema)
    properties = {name: compile_schema(sub) for name, sub in properties_schema.items()}
    extra: Check | None
    if additional is True:
        extra = None
    elif additional is False:
        extra = _never
    else:
        extra = compile_schema(additional)
        if extra is _always:
            extra = None
    object_rules = bool(properties or required or extra is not None)

    # Arrays.
    items_schema = schema.get("items", True)
    if isinstance(items_schema, list):
        return _delegate(schema)  # tuple validation is not used by the schemas we check
    items = compile_schema(items_schema)
    min_items = schema.get("minItems")
    max_items = schema.get("maxItems")
    array_rules = items is not _always or min_items is not None or max_items is not None

    # Strings.
    pattern = re.compile(schema["pattern"]) if "pattern" in schema else None
    min_length = schema.get("minLength")
    max_length = schema.get("maxLength")
    string_rules = pattern is not None or min_length is not None or max_length is not None

    # Combinators.
    one_of = [compile_schema(s) for s in schema.get("oneOf", [])]
    any_of = [compile_schema(s) for s in schema.get("anyOf", [])]
    if ("oneOf" in schema and not one_of) or ("anyOf" in schema and not any_of):
        return _delegate(schema)  # an empty list is a schema error; let jsonschema say so

    def check(value: Any) -> bool:
        if type_check is not None and not type_check(value):
            return False
        if object_rules and isinstance(value, dict):
            for name in required:
                if name not in value:
                    return False
            for key, item in value.items():
                sub = properties.get(key)
                if sub is not None:
                    if not sub(item):
                        return False
                elif extra is not None and not extra(item):
                    return False
        elif array_rules and isinstance(value, list):
            if min_items is not None and len(value) < min_items:
                return False
            if max_items is not None and len(value) > max_items:
                return False
            for item in value:
                if not items(item):
                    return False
        elif string_rules and isinstance(value, str):
            if min_length is not None and len(value) < min_length:
                return False
            if max_length is not None and len(value) > max_length:
                return False
            if pattern is not None and not pattern.search(value):
                return False
        if one_of and sum(1 for sub in one_of if sub(value)) != 1:
            return False
        return not (any_of and not any(sub(value) for sub in any_of))

    return check
