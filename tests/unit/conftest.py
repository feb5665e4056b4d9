"""Fixtures shared by the API unit tests: a control plane on SQLite and the real FastAPI app
over an in-memory ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from test_control_support import opened, settings

from fjord.api import ApiSettings, create_app
from fjord.control import ControlPlane


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[ControlPlane]:
    async with opened(settings(tmp_path)) as opened_plane:
        yield opened_plane


@pytest.fixture
async def http(plane: ControlPlane) -> AsyncIterator[httpx2.AsyncClient]:
    app = create_app(ApiSettings(control=plane.settings), plane=plane)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://fjord.test"
    ) as client:
        yield client
