"""Helpers for the control plane's integration tests: a real API server and its HTTP client."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx2

from fjord.control import ControlPlane, ControlSettings, Role, system_actor
from fjord.control.tokens import create_token

REPO_ROOT = Path(__file__).resolve().parents[3]


async def make_token(settings: ControlSettings, name: str, grants: Mapping[str, Role]) -> str:
    """A token written straight into the database, as ``fjord token create`` does locally."""
    plane = await ControlPlane.open(settings)
    try:
        created = await create_token(plane, system_actor("test-setup"), name, grants)
    finally:
        await plane.close()
    return created.token


class Client:
    """Blocking-free calls to the real server over HTTP, as one token."""

    def __init__(self, url: str, token: str) -> None:
        self.token = token
        self.http = httpx2.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300.0
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        response = await self.http.request(method, path, json=body)
        assert response.status_code == expect, (response.status_code, response.text)
        return response.json() if response.content else None

    async def wait_deployment(
        self,
        deployment_id: int,
        states: tuple[str, ...] = ("ready", "failed"),
        timeout: float = 240,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found: dict[str, Any] = await self.call("GET", f"/api/deployments/{deployment_id}")
            if found["state"] in states:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"deployment {deployment_id} still {found['state']}: {found}")
            await asyncio.sleep(0.5)


def fjord_cli(
    *args: str, env: Mapping[str, str], timeout: float = 400
) -> subprocess.CompletedProcess[str]:
    """Run the real ``fjord`` command in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "fjord.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
        check=False,
    )
