"""The base of every error fjord reports to a user."""

from __future__ import annotations


class FjordError(Exception):
    """An error with a message a user can act on, and optionally a hint on how to fix it."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message
