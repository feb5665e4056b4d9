"""``side_by_side`` and ``both``: the concurrency behind a push's blobs, a tag's checks and
signing."""

from __future__ import annotations

import asyncio

import pytest

from fjord.stores import StoreError
from fjord.stores.concurrency import both, side_by_side


async def test_results_keep_the_order_and_at_most_limit_run_at_once() -> None:
    running = 0
    most = 0

    async def call(item: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        for _ in range(3):  # hand the loop to the others while "in flight"
            await asyncio.sleep(0)
        running -= 1
        return item * 10

    assert await side_by_side(call, range(10), limit=3) == [i * 10 for i in range(10)]
    assert most == 3  # concurrent (not one by one), and never more than the limit


async def test_the_first_failure_cancels_the_rest_and_is_raised_as_itself() -> None:
    started: list[int] = []
    cancelled: list[int] = []
    never = asyncio.Event()

    async def call(item: int) -> None:
        started.append(item)
        if item == 2:
            raise StoreError("registry example: upload blob failed")
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.append(item)
            raise

    with pytest.raises(StoreError, match="upload blob failed"):
        await side_by_side(call, range(6), limit=4)
    # Every call that began besides the failed one was cancelled: none is left writing behind
    # the caller's back.
    assert {0, 1, 2, 3} <= set(started)
    assert sorted(cancelled) == sorted(set(started) - {2})


async def test_no_items_is_no_calls() -> None:
    async def call(item: int) -> int:
        raise AssertionError("not called")

    assert await side_by_side(call, [], limit=2) == []


async def test_both_gives_both_results_and_a_failure_cancels_the_other() -> None:
    async def value(result: str) -> str:
        await asyncio.sleep(0)
        return result

    assert await both(value("bundle"), value("legacy")) == ("bundle", "legacy")

    cancelled = asyncio.Event()

    async def waits() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def fails() -> None:
        await asyncio.sleep(0)
        raise StoreError("registry example: push signature failed")

    with pytest.raises(StoreError, match="push signature failed"):
        await both(waits(), fails())
    assert cancelled.is_set()
