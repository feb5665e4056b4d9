"""How the control-plane commands reach the control plane: always through the HTTP API.

With ``--server`` (or ``FJORD_SERVER``) the CLI calls that server with ``FJORD_TOKEN``. Without
one it opens the local control plane (``$FJORD_DATA_DIR``, SQLite by default) in-process and
calls the very same API app over an in-memory ASGI transport, acting as the local
administrator (whoever can read the data directory already owns everything in it). One code
path, so local and remote behave alike: same validation, roles, audit and JSON.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx2
import typer

from fjord.cli.output import fail

T = TypeVar("T")

# Exit codes shared by every control-plane command.
EXIT_FAILED = 1  # the deployment failed (Flux's error is printed)
EXIT_INVALID = 2
EXIT_NOT_FOUND = 3
EXIT_DENIED = 4
EXIT_CONFLICT = 5
EXIT_TIMEOUT = 6
EXIT_UNREACHABLE = 7

_EXIT = {400: EXIT_INVALID, 401: EXIT_DENIED, 403: EXIT_DENIED, 404: EXIT_NOT_FOUND}
_EXIT |= {409: EXIT_CONFLICT, 422: EXIT_INVALID}

ServerOption = typer.Option(
    None, "--server", envvar="FJORD_SERVER", help="fjord API URL; default: the local control plane"
)
TokenOption = typer.Option(None, "--token", envvar="FJORD_TOKEN", help="API token for --server")


class ApiError(Exception):
    def __init__(self, status: int, message: str, hint: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint


class Api:
    def __init__(self, client: httpx2.AsyncClient) -> None:
        self._client = client

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._client.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
                message, hint = str(body.get("error") or body.get("detail")), body.get("hint")
            except ValueError:
                message, hint = response.text, None
            raise ApiError(response.status_code, message, hint)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call(
            "GET", path, params={k: v for k, v in params.items() if v is not None}
        )

    async def post(self, path: str, body: Any = None) -> Any:
        return await self.call("POST", path, json=body)

    async def put(self, path: str, body: Any) -> Any:
        return await self.call("PUT", path, json=body)

    async def delete(self, path: str) -> Any:
        return await self.call("DELETE", path)


@asynccontextmanager
async def connect(server: str | None, token: str | None) -> AsyncIterator[Api]:
    if server:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx2.AsyncClient(
            base_url=server.rstrip("/"), headers=headers, timeout=600.0
        ) as client:
            yield Api(client)
        return
    # Only the in-process mode needs the API app and the control plane (FastAPI, SQLAlchemy,
    # Kubernetes clients): a remote call does not pay for importing them.
    from fjord.api import ApiSettings, create_app
    from fjord.control import ControlPlane, ControlSettings
    from fjord.control.worker import Worker

    settings = ApiSettings(
        control=ControlSettings.from_env(),
        local_actor=f"local:{os.environ.get('USER', 'admin')}",
        run_worker=False,
    )
    plane = await ControlPlane.open(settings.control)
    # This process is a replica while it runs: its worker publishes what the command queued
    # (and what a stopped process left), and is drained before the command exits.
    worker = Worker(plane)
    plane.work_queued = worker.wake
    await worker.start()
    try:
        app = create_app(settings, plane=plane)
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(
            transport=transport, base_url="http://fjord.local", timeout=600.0
        ) as client:
            yield Api(client)
        await worker.stop(drain=True)
    finally:
        await worker.stop()
        await plane.close()


def run(server: str | None, token: str | None, work: Callable[[Api], Awaitable[T]]) -> T:
    """Run ``work`` against the API; API errors become a message and a meaningful exit code."""

    async def main() -> T:
        async with connect(server, token) as api:
            return await work(api)

    try:
        return asyncio.run(main())
    except ApiError as exc:
        text = exc.message + (f"\nhint: {exc.hint}" if exc.hint else "")
        raise fail(text, _EXIT.get(exc.status, EXIT_INVALID)) from exc
    except httpx2.TransportError as exc:
        raise fail(f"cannot reach {server}: {exc}", EXIT_UNREACHABLE) from exc


def split_app(name: str) -> str:
    """``org/app`` checked, for use in URLs."""
    org, sep, app = name.partition("/")
    if not sep or not org or not app or "/" in app:
        raise fail(f"app names are org/app, got {name!r}", EXIT_INVALID)
    return f"{org}/{app}"
