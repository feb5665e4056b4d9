"""A keyed work queue: level-based reconciles with dedup, concurrency, requeue and backoff.

kopf delivers watch events; the operator hands the latest body of each object to
:meth:`Controller.enqueue`. A key is reconciled by at most one worker at a time; events that
arrive meanwhile collapse into one more run. A :class:`Result` with ``requeue_after`` schedules
the next run (periodic resync, expiry); a :class:`TransientError` retries with exponential backoff
(or the server's retry-after); a :class:`PermanentError` waits for the next change or resync.
Timers live in this object, not in the cluster, so a requeue costs no API writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import structlog

from fjord.operators.common.errors import PermanentError, ReconcileError, TransientError, scrub
from fjord.operators.common.metrics import OperatorMetrics
from fjord.operators.common.result import Result, backoff

Reconcile = Callable[[Hashable, dict[str, Any], int], Awaitable[Result]]
"""``reconcile(key, body, failed_attempts)``: one pass over the object's latest body."""

log = structlog.get_logger("fjord.operators.controller")


class Controller:
    def __init__(
        self,
        name: str,
        reconcile: Reconcile,
        metrics: OperatorMetrics,
        *,
        workers: int = 16,
        permanent_retry: float = 3600.0,
        max_backoff: float = 300.0,
    ) -> None:
        self._name = name
        self._reconcile = reconcile
        self._metrics = metrics
        self._workers = workers
        self._permanent_retry = permanent_retry
        self._max_backoff = max_backoff
        self._bodies: dict[Hashable, dict[str, Any]] = {}
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._queued: set[Hashable] = set()
        self._running: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._failures: dict[Hashable, int] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"{self._name}-worker-{i}")
            for i in range(self._workers)
        ]

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def enqueue(self, key: Hashable, body: dict[str, Any] | None = None) -> None:
        """Reconcile ``key`` soon with ``body`` (or the last body seen)."""
        if body is not None:
            self._bodies[key] = body
        if key not in self._bodies:
            return
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if key in self._running:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def latest(self, key: Hashable) -> dict[str, Any] | None:
        """The last body seen for ``key``."""
        return self._bodies.get(key)

    def remember(self, key: Hashable, body: dict[str, Any]) -> None:
        """Keep ``body`` as the latest of a known ``key`` without scheduling a reconcile.

        For events that need no reconcile (e.g. the reconciler's own status write): a retry or
        requeue that is already scheduled then runs with the newest body, at its own time.
        """
        if key in self._bodies:
            self._bodies[key] = body
        else:
            self.enqueue(key, body)

    def forget(self, key: Hashable) -> None:
        """The object is gone: drop its body, timers and failure count."""
        self._bodies.pop(key, None)
        self._failures.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _later(self, key: Hashable, delay: float) -> None:
        loop = asyncio.get_running_loop()
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        self._timers[key] = loop.call_later(delay, self.enqueue, key)

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            body = self._bodies.get(key)
            if body is None:
                continue
            self._running.add(key)
            try:
                await self._run_one(key, body)
            finally:
                self._running.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.enqueue(key)

    async def _run_one(self, key: Hashable, body: dict[str, Any]) -> None:
        started = time.monotonic()
        attempts = self._failures.get(key, 0)
        try:
            result = await self._reconcile(key, body, attempts)
        except TransientError as exc:
            attempts += 1
            self._failures[key] = attempts
            delay = exc.retry_after or backoff(attempts, cap=self._max_backoff)
            self._count("transient", exc)
            log.warning(
                "reconcile_transient",
                key=str(key),
                reason=exc.reason,
                retry_in=delay,
                error=str(exc),
            )
            self._later(key, delay)
            return
        except PermanentError as exc:
            self._failures.pop(key, None)
            self._count("permanent", exc)
            log.error("reconcile_stalled", key=str(key), reason=exc.reason, error=str(exc))
            self._later(key, self._permanent_retry)
            return
        except Exception as exc:  # a bug or an unclassified failure: retry, never delete
            attempts += 1
            self._failures[key] = attempts
            self._metrics.reconciles.labels(self._name, "error").inc()
            self._metrics.errors.labels(self._name, type(exc).__name__).inc()
            log.exception("reconcile_failed", key=str(key), error=scrub(str(exc)))
            self._later(key, backoff(attempts, cap=self._max_backoff))
            return
        finally:
            self._metrics.duration.labels(self._name).observe(time.monotonic() - started)
        self._failures.pop(key, None)
        self._metrics.reconciles.labels(self._name, "ok" if result.writes else "noop").inc()
        if result.requeue_after is not None:
            self._later(key, result.requeue_after)

    def _count(self, result: str, exc: ReconcileError) -> None:
        self._metrics.reconciles.labels(self._name, result).inc()
        self._metrics.errors.labels(self._name, exc.reason).inc()
