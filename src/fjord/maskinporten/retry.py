"""Backoff for transient failures (5xx, 429, connection errors), honouring Retry-After.

4xx other than 429 are never retried: they mean the request is wrong and will stay wrong.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with optional jitter; ``attempts`` counts the first try."""

    attempts: int = 5
    initial_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 10.0
    max_retry_after: float = 60.0  # a server asking for longer gets this, then we give up
    jitter: float = 0.1  # ±fraction; 0 makes delays exact (tests)
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (retry - 1))
        if self.jitter:
            base *= 1 + self.rng.uniform(-self.jitter, self.jitter)
        if retry_after is not None:
            # The server knows its own limit better than our schedule does.
            return min(self.max_retry_after, max(base, retry_after))
        return base


def is_transient_status(status: int) -> bool:
    return status in TRANSIENT_STATUSES


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
