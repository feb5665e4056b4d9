"""Retries for fjord's HTTP clients (registry, Digdir's admin API, Maskinporten's token endpoint).

One meaning of *transient* for all of them:

* a response with status 408, 429, 500, 502, 503 or 504 (other 4xx mean the request is wrong and
  will stay wrong; 501 and 505 will not change either);
* a transport failure: the connection could not be made, broke, or timed out.

A request that is not idempotent (creating a Digdir client) is retried only when the server
cannot have acted on it: a 429, or a connection that was never made.

Waits grow exponentially with jitter. A server's ``Retry-After`` (delta-seconds or HTTP date)
is honoured: never retried sooner. Every retry loop has an overall deadline: no wait ends past it
(a server asking for a longer wait gets the last answer instead), so a caller knows how long a
call can take at most: the deadline plus one request's timeout.

Hand-written (one small loop) rather than stamina: stamina's waits and deadline run on its own
``asyncio.sleep`` and monotonic clock, and its test mode zeroes every wait, Retry-After included;
here both are injectable, so the tests check the exact waits and deadlines against the
emulator's clock.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx2

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
NOT_PROCESSED_STATUSES = frozenset({429})  # the server refused before acting on the request
# Failures before the request left this process: safe to repeat even a non-idempotent request.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (
    httpx2.ConnectError,
    httpx2.ConnectTimeout,
    httpx2.PoolTimeout,
)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    """How often, how long between, and for how long in all to retry transient failures."""

    attempts: int = 5  # tries in all, the first included
    deadline: float = 60.0  # seconds from the first try; no wait ends later
    initial_delay: float = 0.5  # before the first retry
    multiplier: float = 2.0
    max_delay: float = 10.0
    jitter: float = 0.2  # ±fraction of each wait, so clients that failed together spread out
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based), without a Retry-After."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (retry - 1))
        if self.jitter:
            base *= 1 + self.rng.uniform(-self.jitter, self.jitter)
        return base

    def wait(self, retry: int, retry_after: float | None = None) -> float:
        """The backoff, or the server's Retry-After if that is longer."""
        backoff = self.backoff(retry)
        return backoff if retry_after is None else max(backoff, retry_after)


def is_transient_status(status: int) -> bool:
    return status in TRANSIENT_STATUSES


def may_retry_status(status: int, *, idempotent: bool = True) -> bool:
    if not idempotent:
        return status in NOT_PROCESSED_STATUSES
    return is_transient_status(status)


def may_retry_error(error: httpx2.TransportError, *, idempotent: bool = True) -> bool:
    return idempotent or isinstance(error, NOT_SENT_ERRORS)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is unreadable
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


async def send_with_retries(
    send: Callable[[], Awaitable[httpx2.Response]],
    policy: RetryPolicy,
    *,
    idempotent: bool = True,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
) -> httpx2.Response:
    """Call ``send`` until its response is not transient, within ``policy``.

    Returns the first response that is not worth retrying, or the last one when the attempts or
    the deadline run out (the caller turns its status into an error); raises the last transport
    error when the last attempt failed without a response.
    """
    started = clock()
    retry = 0
    while True:
        retry += 1
        try:
            response = await send()
        except httpx2.TransportError as error:
            if not may_retry_error(error, idempotent=idempotent):
                raise
            wait = policy.wait(retry)
            if retry >= policy.attempts or clock() - started + wait > policy.deadline:
                raise
        else:
            if not may_retry_status(response.status_code, idempotent=idempotent):
                return response
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            wait = policy.wait(retry, retry_after)
            if retry >= policy.attempts or clock() - started + wait > policy.deadline:
                return response
        await sleep(wait)
