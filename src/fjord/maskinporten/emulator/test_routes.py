"""Test-only endpoints under ``/test/``: state dump, reset, faults, clock and scopes.

They are unauthenticated on purpose: the emulator listens on loopback and exists for tests.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from fjord.maskinporten.emulator.config import FaultConfig, ScopeDefinition
from fjord.maskinporten.emulator.state import EmulatorState


class ClockChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    freeze_at: float | None = None
    freeze: bool = False
    advance: float | None = None
    reset: bool = False


class ScopeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    integration_types: tuple[str, ...] = ("maskinporten",)
    accessible_for_all: bool = True
    consumer_orgnos: tuple[str, ...] = ()


def test_router(state: EmulatorState) -> APIRouter:
    router = APIRouter(prefix="/test")

    @router.get("/dump")
    async def dump() -> dict[str, Any]:
        return state.dump()

    @router.post("/reset")
    async def reset() -> dict[str, Any]:
        state.reset()
        state.clock.reset()
        return state.dump()

    @router.get("/faults")
    async def get_faults() -> FaultConfig:
        with state.lock:
            return state.faults

    @router.put("/faults")
    async def put_faults(faults: FaultConfig) -> FaultConfig:
        state.set_faults(faults)
        return faults

    @router.post("/clock")
    async def clock(change: ClockChange) -> dict[str, float | bool]:
        if change.reset:
            state.clock.reset()
        if change.freeze or change.freeze_at is not None:
            state.clock.freeze(change.freeze_at)
        if change.advance is not None:
            state.clock.advance(change.advance)
        return state.clock.describe()

    @router.post("/scopes", status_code=201)
    async def add_scope(scope: ScopeIn) -> ScopeIn:
        state.add_scope(ScopeDefinition(**scope.model_dump()))
        return scope

    return router
