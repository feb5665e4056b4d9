"""The root of fjord's own exceptions.

Every error fjord raises on purpose carries a message for the user and, optionally, a hint that
says what to do about it. The CLI prints both and exits non-zero without a traceback.
"""

from __future__ import annotations


class FjordError(Exception):
    """A failure the user can act on: ``message`` says what went wrong, ``hint`` how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message
