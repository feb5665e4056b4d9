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

from fjord.api.client import FjordClient
from fjord.control import ControlPlane, ControlSettings, Role, clusters, events, system_actor
from fjord.control.tokens import create_token
from fjord.devcluster.postgres import LocalPostgres

REPO_ROOT = Path(__file__).resolve().parents[3]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CLUSTER = "ttd.tt02.tt02-1"


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


PUBLISHED = ("progressing", "ready", "failed")


async def cluster_token(settings: ControlSettings) -> str:
    plane = await ControlPlane.open(settings)
    try:
        await clusters.bootstrap(plane, system_actor("setup"), "ttd", "tt02", "tt02-1")
        return await clusters.cluster_token(plane, system_actor("setup"), CLUSTER)
    finally:
        await plane.close()


async def report_ready(client: FjordClient, token: str, digest: str) -> None:
    body = (
        '{"involvedObject":{"kind":"Kustomization","namespace":"ttd-skjema","name":"skjema"},'
        '"severity":"info","reason":"ReconciliationSucceeded","message":"applied",'
        f'"metadata":{{"revision":"tt02@{digest}"}}}}'
    ).encode()
    ingested = await client.flux_event(CLUSTER, body, events.sign(token, body))
    assert ingested.recorded
