"""Validation problems in spec files, each located by file, line and field path."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fjord.errors import FjordError

PathItem = str | int


def format_path(path: Sequence[PathItem]) -> str:
    """``("env", 0, "name")`` → ``env[0].name``; the root is the empty string."""
    text = ""
    for item in path:
        if isinstance(item, int):
            text += f"[{item}]"
        else:
            text += f".{item}" if text else str(item)
    return text


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a spec: where it is and what to do about it."""

    file: str
    line: int
    path: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        text = f"{where}{self.path}: {self.message}" if self.path else f"{where}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class SpecError(FjordError):
    """Every problem found in one spec (or platform config) file, reported together."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        unique = sorted(set(problems), key=lambda p: (p.file, p.line, p.path, p.message))
        self.problems: tuple[Problem, ...] = tuple(unique)
        count = len(self.problems)
        lines = "\n".join(str(p) for p in self.problems)
        header = "1 problem" if count == 1 else f"{count} problems"
        super().__init__(f"{header} in the spec:\n{lines}" if count != 1 else lines)
