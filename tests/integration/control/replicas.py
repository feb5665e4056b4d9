"""Helpers (not tests): several ``fjord serve`` processes on one PostgreSQL and one data dir,
each a replica with its own worker, restarted when one dies; an app source per name; calls to
them through the one API client, answers as JSON (the tests compare raw fields and statuses)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import yaml

from fjord.api.client import ApiError, FjordClient
from fjord.api.server import bind_loopback
from fjord.spec import PlatformConfig

REPO_ROOT = Path(__file__).resolve().parents[3]


def write_platform(path: Path, platform: PlatformConfig) -> Path:
    path.write_text(
        yaml.safe_dump(platform.model_dump(mode="json", by_alias=True, exclude_none=True))
    )
    return path


def app_source(root: Path, name: str) -> Path:
    """The platform-app example as app ``ttd/<name>``."""
    target = root / name
    if not target.exists():
        shutil.copytree(REPO_ROOT / "examples" / "platform-app", target)
        spec = target / "fjord.yaml"
        spec.write_text(spec.read_text().replace("app: skjema", f"app: {name}", 1))
    return target


class Client:
    """One replica's API as one token, through :class:`FjordClient`; answers as JSON."""

    def __init__(self, url: str, token: str) -> None:
        self.token = token
        self.api = FjordClient.remote(url, token, timeout=300.0)

    async def aclose(self) -> None:
        await self.api.aclose()

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        try:
            response = await self.api.request(method, path, json=body)
        except ApiError as exc:
            raise AssertionError(f"{method} {path}: {exc.status} {exc}") from exc
        assert response.status_code == expect, (response.status_code, response.text)
        return response.json() if response.content else None

    async def wait_deployment(
        self, deployment_id: int, states: tuple[str, ...], timeout: float = 240
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found: dict[str, Any] = await self.call("GET", f"/api/deployments/{deployment_id}")
            if found["state"] in states:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"deployment {deployment_id} still {found['state']}: {found}")
            await asyncio.sleep(0.2)


@dataclass
class Replica:
    index: int
    url: str
    process: subprocess.Popen[bytes]

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Replicas:
    """``fjord serve`` processes sharing ``env`` (database, data dir, leases); logs in ``logs``."""

    env: Mapping[str, str]
    logs: Path
    count: int = 2
    started: int = 0
    members: dict[int, Replica] = field(default_factory=dict)

    def _spawn(self, index: int) -> Replica:
        sock = bind_loopback()
        port = sock.getsockname()[1]
        sock.close()
        self.started += 1
        log = (self.logs / f"replica-{index}-{self.started}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "fjord.cli", "serve", "--port", str(port)],
            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return Replica(index, f"http://127.0.0.1:{port}", process)

    @staticmethod
    def _wait_ready(replica: Replica, timeout: float = 300.0) -> None:
        # Generous: on a loaded 2-core machine importing the server alone took 80 s (3 s of CPU);
        # a replica that dies is noticed at once.
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx2.get(replica.url + "/openapi.json", timeout=2).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            if not replica.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"replica {replica.index} did not start")
            time.sleep(0.1)

    def start(self) -> Replicas:
        for index in range(self.count):
            self.members[index] = self._spawn(index)
        for replica in self.members.values():
            self._wait_ready(replica)
        return self

    def restart_dead(self, *, wait: bool = True) -> list[int]:
        """Start a new process for every replica that died; returns their indexes."""
        dead = [i for i, r in self.members.items() if not r.alive()]
        for index in dead:
            self.members[index].process.wait()
            self.members[index] = self._spawn(index)
        if wait:
            for index in dead:
                self._wait_ready(self.members[index])
        return dead

    def wait_ready(self) -> None:
        """Every replica answers (restarted ones included)."""
        for replica in self.members.values():
            self._wait_ready(replica)

    def urls(self) -> list[str]:
        return [r.url for r in self.members.values() if r.alive()]

    def stop(self) -> None:
        for replica in self.members.values():
            if replica.alive():
                replica.process.send_signal(signal.SIGTERM)
        for replica in self.members.values():
            try:
                replica.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait()
