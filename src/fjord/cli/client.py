"""How the control-plane commands reach the control plane: always through the HTTP API, with
the one API client (:mod:`fjord.api.client`).

With ``--server`` (or ``FJORD_SERVER``) the CLI calls that server with ``FJORD_TOKEN``. Without
one it opens the local control plane (``$FJORD_DATA_DIR``, SQLite by default) in-process and
calls the very same API app over an in-memory ASGI transport, acting as the local
administrator (whoever can read the data directory already owns everything in it). One code
path, so local and remote behave alike: same validation, roles, audit and JSON.

This module adds only what is the CLI's own: the options, and errors → exit codes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import httpx2
import typer

from fjord.api.client import ApiError, ClientError, FjordClient, Unreachable
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
_EXIT |= {409: EXIT_CONFLICT, 413: EXIT_INVALID, 422: EXIT_INVALID, 428: EXIT_INVALID}

ServerOption = typer.Option(
    None, "--server", envvar="FJORD_SERVER", help="fjord API URL; default: the local control plane"
)
TokenOption = typer.Option(None, "--token", envvar="FJORD_TOKEN", help="API token for --server")


async def _signed_in(server: str | None) -> tuple[str, str] | None:
    """The server and a fresh ID token of a ``fjord login`` context (for ``server``, else the
    current one); None without one."""
    from fjord.cli.contexts import UserConfig, fresh_token

    config = UserConfig.load()
    found = config.find(server)
    if found is None:
        return None
    name, context = found
    return context.server, await fresh_token(config, name)


@asynccontextmanager
async def connect(server: str | None, token: str | None) -> AsyncIterator[FjordClient]:
    if token is None:
        signed_in = await _signed_in(server)
        if signed_in is not None:
            server, token = signed_in
    if server:
        async with FjordClient.remote(server, token) as api:
            yield api
        return
    # Only the in-process mode needs the API app and the control plane (FastAPI, SQLAlchemy,
    # Kubernetes clients): a remote call does not pay for importing them.
    from fjord.api import ApiSettings, create_app
    from fjord.api.client import DEFAULT_TIMEOUT
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
        http = httpx2.AsyncClient(
            transport=transport, base_url="http://fjord.local", timeout=DEFAULT_TIMEOUT
        )
        async with FjordClient(http) as api:
            yield api
        await worker.stop(drain=True)
    finally:
        await worker.stop()
        await plane.close()


def exit_code(exc: ClientError) -> int:
    if isinstance(exc, ApiError):
        return _EXIT.get(exc.status, EXIT_INVALID)
    if isinstance(exc, Unreachable):
        return EXIT_UNREACHABLE
    return EXIT_INVALID  # InvalidName and anything else the caller got wrong


def run(server: str | None, token: str | None, work: Callable[[FjordClient], Awaitable[T]]) -> T:
    """Run ``work`` against the API; API errors become a message and a meaningful exit code."""

    async def main() -> T:
        async with connect(server, token) as api:
            return await work(api)

    from fjord.cli.contexts import ContextError

    try:
        return asyncio.run(main())
    except ClientError as exc:
        raise fail(str(exc), exit_code(exc)) from exc
    except ContextError as exc:
        raise fail(f"{exc.message} ({exc.hint})" if exc.hint else exc.message, EXIT_DENIED) from exc
