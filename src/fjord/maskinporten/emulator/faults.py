"""Fault injection: added latency, 5xx and 429 with Retry-After, each at a configured rate.

Decisions draw from the state's seeded generator, so a given seed and request sequence always
fails the same requests. ``/test/`` paths are never faulted, so tests can always reset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from fjord.maskinporten.emulator.state import EmulatorState

TEST_PREFIX = "/test/"


@dataclass(frozen=True)
class Fault:
    delay: float = 0.0
    status: int | None = None
    retry_after: int | None = None


def decide(state: EmulatorState, path: str) -> Fault:
    """Whether (and how) to disturb one request; counts what it injects."""
    with state.lock:
        cfg = state.faults
        if path.startswith(TEST_PREFIX):
            return Fault()
        if cfg.path_prefixes and not any(path.startswith(p) for p in cfg.path_prefixes):
            return Fault()
        rng = state.fault_rng
        delay = cfg.latency_seconds if rng.random() < cfg.latency_rate else 0.0
        if delay:
            state.faults_injected["latency"] += 1
        budget_left = cfg.max_faults is None or state.faults_injected["failures"] < cfg.max_faults
        draw = rng.random()
        if budget_left and draw < cfg.rate_limit_rate:
            state.faults_injected["failures"] += 1
            state.faults_injected["429"] += 1
            return Fault(delay=delay, status=429, retry_after=cfg.retry_after)
        if budget_left and draw < cfg.rate_limit_rate + cfg.error_rate:
            state.faults_injected["failures"] += 1
            state.faults_injected[str(cfg.error_status)] += 1
            return Fault(delay=delay, status=cfg.error_status)
        return Fault(delay=delay)


def fault_middleware(
    state: EmulatorState,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        fault = decide(state, request.url.path)
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is None:
            return await call_next(request)
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        body = {"error": "temporarily_unavailable", "error_description": "injected fault"}
        return JSONResponse(body, status_code=fault.status, headers=headers)

    return middleware
