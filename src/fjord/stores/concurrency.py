"""Store calls side by side: bounded, in order, and failing like one call.

A publish is a few dozen small requests; most of its time is round trips. These helpers send
independent ones together. Both keep a store operation's all-or-nothing shape: the first
failure cancels the calls still running (nothing keeps writing behind the caller's back once it
has an error, and the caller can close the store) and is raised as itself, not wrapped in an
exception group, so callers catch ``StoreError`` as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")
_A = TypeVar("_A")
_B = TypeVar("_B")


async def side_by_side(
    call: Callable[[_T], Awaitable[_R]], items: Iterable[_T], *, limit: int
) -> list[_R]:
    """``call`` for every item concurrently, at most ``limit`` at a time; the results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(item: _T) -> _R:
        async with gate:
            return await call(item)

    async with _task_group() as group:
        tasks = [group.create_task(one(item)) for item in items]
    return [task.result() for task in tasks]


async def both(first: Coroutine[Any, Any, _A], second: Coroutine[Any, Any, _B]) -> tuple[_A, _B]:
    """Two independent calls at once; both results."""
    async with _task_group() as group:
        one, other = group.create_task(first), group.create_task(second)
    return one.result(), other.result()


@asynccontextmanager
async def _task_group() -> AsyncIterator[asyncio.TaskGroup]:
    """A task group whose first failure comes out as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except BaseExceptionGroup as failed:
        error: BaseException = failed
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        raise error from None
