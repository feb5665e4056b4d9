"""Bounds on untrusted YAML: size (before reading), nesting depth and alias expansion.

Every YAML document fjord reads from a user (fjord.yaml, platform config, dynamic-config values,
Chart.yaml, what a chart renders) goes through here, because PyYAML alone is not safe on
hostile input:

* **aliases**: a few hundred bytes of nested anchors expand to billions of nodes once anything
  walks the data (our line-number walk, pydantic, the YAML writer). We count the *expanded* size
  of the composed node graph (memoised per node, so the count itself is linear) before
  constructing anything;
* **depth**: libyaml's composer is recursive C code; ~100k nested ``[`` crash the interpreter
  with a segmentation fault, and fewer give a RecursionError in Python code after it. Depth is
  bounded before composing: a cheap upper bound from the text decides whether the (slower)
  event scan is needed at all;
* **size**: checked on the open file's ``fstat`` before reading, then the read is capped, and
  anything but a regular file (a FIFO, ``/dev/zero``, a socket) is refused unopened for reading.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import yaml

from fjord.errors import FjordError

# 64 levels is far beyond any hand-written spec or Kubernetes object (a Deployment's deepest
# path is about 12) and far below where Python or libyaml recursion becomes a danger.
MAX_DEPTH = 64


@dataclass(frozen=True)
class YamlLimits:
    max_bytes: int
    max_nodes: int  # after expanding every alias
    max_depth: int = MAX_DEPTH


class YamlLimitError(FjordError):
    """A YAML input exceeds a bound; ``file`` and ``line`` (0: unknown) say where."""

    def __init__(self, file: str, line: int, message: str, hint: str) -> None:
        super().__init__(f"{file}{f':{line}' if line else ''}: {message}", hint)
        self.file = file
        self.line = line
        self.reason = message


def read_bounded(path: Path, max_bytes: int, display: str | None = None) -> bytes:
    """The bytes of a regular file no larger than ``max_bytes``; never reads more than that.

    Opened non-blocking so that a FIFO without a writer does not hang us; its type is checked
    on the open descriptor (no race with a swapped path).
    """
    name = display or str(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise YamlLimitError(
                name, 0, "is not a regular file", "point fjord at a plain file in the repository"
            )
        if info.st_size > max_bytes:
            raise too_large(name, info.st_size, max_bytes)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = stream.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # the file grew after fstat
        raise too_large(name, max_bytes, max_bytes, grew=True)
    return data


def too_large(file: str, size: int, limit: int, grew: bool = False) -> YamlLimitError:
    return YamlLimitError(
        file,
        0,
        f"is {'more than ' if grew else ''}{size} bytes; the limit is {limit} bytes",
        "split it up or remove what is generated; fjord only reads hand-sized files",
    )


def _within_bound(text: str, max_depth: int) -> bool:
    """True when ``text`` cannot nest deeper than ``max_depth``: cheap (a few C-level scans),
    so the exact event scan only runs for unusual input.

    Each flow level needs a bracket; each block level needs one more column of indentation or
    one more indicator at the start of its line, and a compact sequence shares its parent's
    column, so two levels per column of a line's leading run of spaces and indicators.
    """
    brackets = text.count("[") + text.count("{")
    widest_allowed = (max_depth - 2 - brackets) // 2
    if widest_allowed < 0:
        return False
    return _long_prefix(widest_allowed + 1).search(text) is None


@functools.cache
def _long_prefix(width: int) -> re.Pattern[str]:
    """Lines starting with ``width`` or more spaces and block indicators."""
    return re.compile(rf"^[ \t?:-]{{{width},}}", re.MULTILINE)


def check_depth(text: str | bytes, file: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse ``text`` nesting deeper than ``max_depth``, before it reaches a recursive parser."""
    sample = text if isinstance(text, str) else text.decode("utf-8", "replace")
    if _within_bound(sample, max_depth):
        return
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_EventLoader):
            kind = type(event)
            if kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                depth += 1
                if depth > max_depth:
                    line = event.start_mark.line + 1 if event.start_mark else 0
                    raise YamlLimitError(
                        file,
                        line,
                        f"nesting is deeper than {max_depth} levels",
                        "flatten the structure; no spec or Kubernetes object needs this depth",
                    )
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                depth -= 1
    except yaml.YAMLError:
        return  # malformed: the real parse reports it with its line


def check_expansion(node: yaml.Node, file: str, max_nodes: int) -> None:
    """Refuse a composed document whose aliases expand beyond ``max_nodes`` nodes."""
    sizes: dict[int, int] = {}

    def size(current: yaml.Node) -> int:
        known = sizes.get(id(current))
        if known is not None:
            return known
        sizes[id(current)] = 1  # a recursive alias counts once; the constructor rejects it
        total = 1
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                total += size(key) + size(value)
        elif isinstance(current, yaml.SequenceNode):
            for item in current.value:
                total += size(item)
        sizes[id(current)] = total
        if total > max_nodes:
            raise YamlLimitError(
                file,
                current.start_mark.line + 1,
                f"expands to more than {max_nodes} values once its aliases (*name) are resolved",
                "write the values out or use fewer nested aliases",
            )
        return total

    size(node)


def may_have_aliases(text: str | bytes) -> bool:
    """False when ``text`` cannot contain an alias (no anchor and alias marks at all)."""
    if isinstance(text, bytes):
        return b"&" in text and b"*" in text
    return "&" in text and "*" in text


try:  # libyaml's parser is iterative (no recursion on depth) and fast
    _EventLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment,misc,unused-ignore]
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _EventLoader = yaml.SafeLoader


def compose_one(
    loader: yaml.SafeLoader, text: str | bytes, file: str, limits: YamlLimits
) -> yaml.Node | None:
    """The single document of ``loader`` (over ``text``) composed within ``limits``."""
    check_depth(text, file, limits.max_depth)
    node = loader.get_single_node()
    if node is not None and may_have_aliases(text):
        check_expansion(node, file, limits.max_nodes)
    return node


def safe_load_bounded(text: str | bytes, file: str, limits: YamlLimits) -> object:
    """``yaml.safe_load`` within ``limits`` (size, depth, alias expansion)."""
    if len(text) > limits.max_bytes:
        raise too_large(file, len(text), limits.max_bytes)
    loader = _EventLoader(text)
    try:
        node = compose_one(loader, text, file, limits)
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()
