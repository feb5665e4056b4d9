"""The emulator's clock: wall time that tests can freeze, shift or advance.

Every time-based rule (grant ``iat``/``exp``, token expiry, the one-year key lifetime) reads this
clock, so tests exercise those rules without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class EmulatorClock:
    """``now()`` is the frozen instant if frozen, else the source time plus an offset."""

    def __init__(
        self,
        *,
        frozen_at: float | None = None,
        offset: float = 0.0,
        source: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._frozen_at = frozen_at
        self._offset = offset
        self._source = source

    def now(self) -> float:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return self._source() + self._offset

    def freeze(self, at: float | None = None) -> None:
        """Stop the clock at ``at`` (default: the current emulator time)."""
        current = self.now()
        with self._lock:
            self._frozen_at = current if at is None else at

    def advance(self, seconds: float) -> None:
        """Move time forward (or back, if negative), frozen or not."""
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += seconds
            else:
                self._offset += seconds

    def reset(self) -> None:
        """Back to plain wall time."""
        with self._lock:
            self._frozen_at = None
            self._offset = 0.0

    def describe(self) -> dict[str, float | bool]:
        with self._lock:
            frozen = self._frozen_at is not None
            offset = self._offset
        return {"now": self.now(), "frozen": frozen, "offset": offset}
