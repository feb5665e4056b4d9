"""Parse YAML while remembering the line every value came from.

pydantic reports errors by field path; users need ``file:line``. We compose the YAML node tree
(which carries marks), construct the plain data from it with the safe constructor, and walk the
tree once to record ``path → line``. Duplicate keys (which PyYAML silently resolves to the last
value) are reported here, because they are almost always a mistake in a hand-written spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from fjord.spec.errors import PathItem, Problem, SpecError, format_path
from fjord.yamllimits import YamlLimitError, YamlLimits, compose_one, too_large

MAX_SPEC_BYTES = 1024 * 1024  # a spec is hand-written; anything bigger is a mistake or an attack
# Hand-written files: 1 MiB of YAML is at most a few hundred thousand values written out.
SPEC_LIMITS = YamlLimits(max_bytes=MAX_SPEC_BYTES, max_nodes=500_000)

try:  # libyaml is much faster; fall back so the parser still works without it
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment,misc,unused-ignore]
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader


LinePath = tuple[str, ...]


def _key(path: Sequence[PathItem]) -> LinePath:
    # Paths from pydantic mix ints (list indices) and strings; YAML keys may be any scalar.
    return tuple(str(p) for p in path)


@dataclass(frozen=True)
class Located:
    """Parsed YAML data plus the line of every key and list item in it."""

    file: str
    data: Any
    lines: dict[LinePath, int] = field(default_factory=dict)

    def line_of(self, path: Sequence[PathItem]) -> int:
        """The line of ``path``, or of its nearest existing ancestor (e.g. for a missing field)."""
        key = _key(path)
        while key:
            line = self.lines.get(key)
            if line is not None:
                return line
            key = key[:-1]
        return self.lines.get((), 1)

    def has(self, path: Sequence[PathItem]) -> bool:
        return _key(path) in self.lines

    def problem(self, path: Sequence[PathItem], message: str, hint: str | None = None) -> Problem:
        return Problem(self.file, self.line_of(path), format_path(path), message, hint)


def _walk(
    node: yaml.Node, path: LinePath, lines: dict[LinePath, int], problems: list[Problem], file: str
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                problems.append(
                    Problem(
                        file,
                        line,
                        format_path((*path, key)),
                        f"duplicate key (first defined on line {seen[key]})",
                    )
                )
            seen.setdefault(key, line)
            lines.setdefault((*path, key), line)
            _walk(value_node, (*path, key), lines, problems, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault((*path, str(index)), item.start_mark.line + 1)
            _walk(item, (*path, str(index)), lines, problems, file)


def limit_problem(exc: YamlLimitError) -> SpecError:
    return SpecError([Problem(exc.file, exc.line, "", exc.reason, exc.hint)])


def parse_yaml(text: str | bytes, file: str) -> Located:
    """Parse one YAML document; any syntax problem becomes a :class:`SpecError` with file:line."""
    if len(text) > MAX_SPEC_BYTES:
        raise limit_problem(too_large(file, len(text), MAX_SPEC_BYTES))
    loader = _Loader(text)
    try:
        node = compose_one(loader, text, file, SPEC_LIMITS)
        if node is None:
            raise SpecError([Problem(file, 1, "", "the file is empty")])
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        reason = exc.problem or exc.context or "malformed YAML"
        raise SpecError([Problem(file, line, "", f"malformed YAML: {reason}")]) from None
    except YamlLimitError as exc:
        raise limit_problem(exc) from None
    except yaml.YAMLError as exc:  # e.g. a reader error for invalid characters
        raise SpecError([Problem(file, 0, "", f"malformed YAML: {exc}")]) from None
    finally:
        loader.dispose()
    lines: dict[LinePath, int] = {(): node.start_mark.line + 1}
    problems: list[Problem] = []
    _walk(node, (), lines, problems, file)
    if problems:
        raise SpecError(problems)
    return Located(file, data, lines)
