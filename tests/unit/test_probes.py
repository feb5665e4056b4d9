"""/healthz and /readyz: the control plane's (ready while its database answers) and the
operators' (ready once kopf has run their startup handlers)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx2

from fjord.control import ControlPlane
from fjord.control.db import Database
from fjord.operators.common import health


async def test_the_control_plane_is_ready_while_its_database_answers(
    plane: ControlPlane, http: httpx2.AsyncClient, tmp_path: Path
) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    assert (await http.get("/readyz")).json() == {"status": "ok"}
    working = plane.db
    plane.db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gone' / 'fjord.db'}")  # unreachable
    try:
        unready = await http.get("/readyz")
        alive = await http.get("/healthz")
    finally:
        await plane.db.dispose()
        plane.db = working
    assert unready.status_code == 503
    assert unready.json() == {"status": "unavailable", "failed": "database"}
    assert alive.status_code == 200  # alive, only not ready: the kubelet must not restart it


async def test_an_operator_is_ready_once_started() -> None:
    ready = asyncio.Event()
    runner = await health.start("127.0.0.1", 0, ready)
    try:
        port = runner.addresses[0][1]
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/healthz")).status_code == 200
            starting = await http.get("/readyz")
            assert (starting.status_code, starting.json()) == (503, {"status": "starting"})
            ready.set()
            assert (await http.get("/readyz")).json() == {"status": "ok"}
    finally:
        await runner.cleanup()
