"""fjord.retry: the one retry policy of the registry, Digdir admin and token clients."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx2
import pytest

from fjord.retry import (
    RetryPolicy,
    may_retry_error,
    may_retry_status,
    parse_retry_after,
    send_with_retries,
)


def test_backoff_grows_is_capped_and_jitters_within_bounds() -> None:
    exact = RetryPolicy(initial_delay=1, multiplier=2, max_delay=5, jitter=0)
    assert [exact.backoff(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    jittered = RetryPolicy(initial_delay=1, jitter=0.1)
    assert all(0.9 <= jittered.backoff(1) <= 1.1 for _ in range(100))


def test_retry_after_is_never_undercut() -> None:
    policy = RetryPolicy(initial_delay=1, multiplier=2, jitter=0)
    assert policy.wait(1, retry_after=10) == 10
    assert policy.wait(3, retry_after=1) == 4  # our own backoff is longer
    assert policy.wait(1, retry_after=3600) == 3600  # the deadline decides, not a cap


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_one_meaning_of_transient(status: int) -> None:
    assert may_retry_status(status)
    assert may_retry_status(status, idempotent=False) is (status == 429)


@pytest.mark.parametrize("status", [200, 301, 400, 401, 403, 404, 409, 422, 501, 505])
def test_the_rest_is_not_retried(status: int) -> None:
    assert not may_retry_status(status)
    assert not may_retry_status(status, idempotent=False)


def test_a_request_that_may_have_been_sent_is_repeated_only_if_idempotent() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1/")
    refused = httpx2.ConnectError("refused", request=request)
    cut = httpx2.ReadTimeout("timed out", request=request)
    assert may_retry_error(refused, idempotent=False)
    assert not may_retry_error(cut, idempotent=False)
    assert may_retry_error(cut)


class FakeTime:
    """A clock that only moves when the code under test sleeps; records the sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def responder(
    *statuses: int, retry_after: str | None = None
) -> Callable[[], Awaitable[httpx2.Response]]:
    remaining = list(statuses)
    request = httpx2.Request("GET", "http://127.0.0.1/")

    async def send() -> httpx2.Response:
        status = remaining.pop(0) if remaining else 200
        headers = {"Retry-After": retry_after} if retry_after and status != 200 else {}
        return httpx2.Response(status, headers=headers, request=request)

    return send


async def test_the_deadline_bounds_the_waits() -> None:
    fake = FakeTime()
    policy = RetryPolicy(attempts=10, deadline=2.0, initial_delay=0.5, jitter=0)
    response = await send_with_retries(
        responder(*[503] * 20),
        policy,
        sleep=fake.sleep,
        clock=fake.clock,
    )
    assert response.status_code == 503
    assert fake.sleeps == [0.5, 1.0]  # a third wait (2.0) would end past the deadline


async def test_a_retry_after_past_the_deadline_gives_up_at_once() -> None:
    fake = FakeTime()
    policy = RetryPolicy(deadline=10.0, jitter=0)
    send = responder(429, retry_after="30")
    response = await send_with_retries(send, policy, sleep=fake.sleep, clock=fake.clock)
    assert response.status_code == 429
    assert fake.sleeps == []
