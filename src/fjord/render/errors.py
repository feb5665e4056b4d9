"""Errors raised while rendering and checking a release."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fjord.errors import FjordError


class RenderError(FjordError):
    """A chart or the platform chart could not be rendered; ``file`` names the template."""

    def __init__(self, message: str, hint: str | None = None, file: str | None = None) -> None:
        super().__init__(message, hint)
        self.file = file


@dataclass(frozen=True, order=True)
class CheckFailure:
    """One rendered object that must not be published, and why."""

    file: str
    object: str  # kind/namespace/name
    path: str  # field path inside the object, "" for the whole object
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.object}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class CheckError(FjordError):
    """Pre-publish checks failed; every failure is listed."""

    def __init__(self, failures: Iterable[CheckFailure]) -> None:
        self.failures: tuple[CheckFailure, ...] = tuple(sorted(set(failures)))
        count = len(self.failures)
        lines = "\n".join(f"  {f}" for f in self.failures)
        super().__init__(
            f"{count} check failure{'s' if count != 1 else ''}, nothing was published:\n{lines}",
            hint="fix the chart or fjord.yaml and render again",
        )
