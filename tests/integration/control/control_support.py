"""Helpers for the control plane's integration tests: tokens and the real ``fjord`` command.

The API is called with the one client, :class:`fjord.api.client.FjordClient`."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psycopg

from fjord.control import ControlPlane, ControlSettings, Role, system_actor
from fjord.control.tokens import create_token
from fjord.devcluster.postgres import LocalPostgres

REPO_ROOT = Path(__file__).resolve().parents[3]


@contextmanager
def fresh_database(postgres: LocalPostgres) -> Iterator[str]:
    """A new database on the shared server, dropped afterwards; its SQLAlchemy URL (psycopg 3)."""
    name = f"fjord_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    base = postgres.dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(postgres.dsn, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


async def make_token(settings: ControlSettings, name: str, grants: Mapping[str, Role]) -> str:
    """A token written straight into the database, as ``fjord token create`` does locally."""
    plane = await ControlPlane.open(settings)
    try:
        created = await create_token(plane, system_actor("test-setup"), name, grants)
    finally:
        await plane.close()
    return created.token


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
