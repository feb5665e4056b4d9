"""Retry timing for network stores: exponential backoff with full jitter, and Retry-After."""

from __future__ import annotations

import datetime as dt
import email.utils
import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before retrying a transient failure.

    The n-th retry (n from 0) waits a uniformly random time in ``[0, min(max_delay,
    base_delay * 2**n)]`` ("full jitter", so many clients that failed together do not retry in
    lock-step). A server's ``Retry-After`` replaces that delay, capped at ``max_retry_after``.
    """

    attempts: int = 5  # total tries, including the first
    base_delay: float = 0.2
    max_delay: float = 10.0
    max_retry_after: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        cap = min(self.max_delay, self.base_delay * (2**retry))
        return self.rng.uniform(0.0, cap)

    def retry_after(self, header: str | None, retry: int) -> float:
        """Seconds to wait given a ``Retry-After`` header (delta-seconds or HTTP date)."""
        seconds = parse_retry_after(header)
        if seconds is None:
            return self.backoff(retry)
        return min(seconds, self.max_retry_after)


def parse_retry_after(header: str | None, now: dt.datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now, or None if absent or unparsable."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    current = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - current).total_seconds())
