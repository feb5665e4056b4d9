"""Turn pydantic's ValidationError into located, readable :class:`Problem` s.

pydantic's locations contain union tags and validator names that are not part of the document;
we keep only the steps that exist in the data. Unknown fields get a "did you mean" hint computed
from the fields the model really has at that place.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from fjord.spec.errors import PathItem, Problem, format_path

_MESSAGES = {
    "missing": "required field is missing",
    "extra_forbidden": "unknown field",
}


def _document_path(loc: Sequence[PathItem], data: Any, missing: bool) -> tuple[PathItem, ...]:
    path: list[PathItem] = []
    node = data
    for index, item in enumerate(loc):
        in_dict = isinstance(node, dict) and item in node
        in_list = isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node)
        if in_dict or in_list:
            node = node[item]
        elif not (missing and index == len(loc) - 1):
            continue  # a union tag or validator name: not a place in the document
        path.append(item)
    return tuple(path)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _step(annotation: Any, item: PathItem) -> Any:
    """The type found one step below ``annotation`` at ``item``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _step(typing.get_args(annotation)[0], item)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _step(arg, item)
            if found is not None:
                return found
        return None
    if origin in (list, tuple, Sequence) and isinstance(item, int):
        return typing.get_args(annotation)[0]
    if origin in (dict, typing.Mapping) and not isinstance(item, int):
        return typing.get_args(annotation)[1]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if item in (name, field.alias):
                return field.annotation
    return None


def allowed_fields(model: type[BaseModel], path: Sequence[PathItem]) -> list[str]:
    """The YAML keys the spec accepts at ``path`` (empty when it is not a model there)."""
    annotation: Any = model
    for item in path:
        annotation = _step(annotation, item)
        if annotation is None:
            return []
    found = _model_in(annotation)
    if found is None:
        return []
    return [field.alias or name for name, field in found.model_fields.items()]


def located_errors(
    exc: ValidationError, model: type[BaseModel], data: Any
) -> Iterator[tuple[tuple[PathItem, ...], str, str | None]]:
    """``(document path, message, hint)`` for every pydantic error."""
    for error in exc.errors(include_url=False):
        path = _document_path(error["loc"], data, missing=error["type"] == "missing")
        message = _MESSAGES.get(error["type"], error["msg"])
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        hint = None
        if error["type"] == "extra_forbidden" and path:
            choices = allowed_fields(model, path[:-1])
            close = difflib.get_close_matches(str(path[-1]), choices, n=1, cutoff=0.6)
            if close:
                hint = f"did you mean `{close[0]}`?"
            elif choices:
                hint = "expected one of: " + ", ".join(sorted(choices))
        yield path, message, hint


def problems_from(
    exc: ValidationError,
    model: type[BaseModel],
    data: Any,
    file: str,
    line_of: Callable[[Sequence[PathItem]], int] | None = None,
) -> list[Problem]:
    """One :class:`Problem` per pydantic error, located in ``data`` (and by line if known)."""
    return [
        Problem(file, line_of(path) if line_of else 0, format_path(path), message, hint)
        for path, message, hint in located_errors(exc, model, data)
    ]
