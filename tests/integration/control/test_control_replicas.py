"""Two ``fjord serve`` replicas (separate processes) on one real PostgreSQL.

* a burst of 20 concurrent requests spread over both: queued, run in request order, none
  failed, the last request wins in the sync root and the tag;
* kill -9 of a replica at every step boundary of a deploy (5 points per step: before, started,
  during, ran, ended): the other replica finishes every deployment, no tag half-moved (manifest,
  blobs and signature behind every tag), no claim left;
* a Flux Receiver that never answers: deploys still succeed, in order.

Leases are short here (``FJORD_LEASE_SECONDS``) so takeovers are quick.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from control_support import fresh_database, make_token
from replicas import Client, Replicas, app_source, write_platform
from sqlalchemy import select

import gitea_support
from fjord.api.client import ClientError
from fjord.api.server import bind_loopback
from fjord.artifact.signing import load_public_key
from fjord.control import (
    ControlPlane,
    ControlSettings,
    Role,
    credentials,
    faults,
    pipeline,
    system_actor,
)
from fjord.control import apps as app_service
from fjord.control.models import Deployment, Lock
from fjord.devcluster.postgres import LocalPostgres
from fjord.spec import default_platform
from fjord.spec.platform import IngressRouting
from fjord.stores import LocalStore
from fjord.stores.signatures import Trust, pull_verified

LEASE = 1.0
ADMIN = system_actor("alice")
FINAL = ("progressing", "ready", "failed", "superseded")
PHASES = ("before", "started", "during", "ran", "ended")


@pytest.fixture
def database(postgres: LocalPostgres) -> Iterator[str]:
    with fresh_database(postgres) as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database: str) -> ControlSettings:
    platform = default_platform().model_copy(update={"routing": IngressRouting(flavour="ingress")})
    return ControlSettings(
        data_dir=tmp_path / "data", database_url=database, platform=platform, lease_seconds=LEASE
    )


@pytest.fixture
def faults_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "faults"
    directory.mkdir()
    return directory


@pytest.fixture
def replicas(
    tmp_path: Path, settings: ControlSettings, database: str, faults_dir: Path
) -> Iterator[Replicas]:
    # The schema first, once: replicas starting together would race to migrate an empty one.
    asyncio.run(_open_once(settings))
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {
        "FJORD_DATA_DIR": str(settings.data_dir),
        "FJORD_DATABASE_URL": database,
        "FJORD_PLATFORM": str(write_platform(tmp_path / "platform.yaml", settings.platform)),
        "FJORD_LEASE_SECONDS": str(LEASE),
        "FJORD_POLL_SECONDS": "0.1",
        "FJORD_RECEIVER_TIMEOUT": "0.5",
        faults.VARIABLE: str(faults_dir),
    }
    group = Replicas(env, logs).start()
    try:
        yield group
    finally:
        group.stop()


async def _open_once(settings: ControlSettings) -> None:
    plane = await ControlPlane.open(settings)
    await plane.close()


@pytest.fixture
async def clients(settings: ControlSettings, replicas: Replicas) -> AsyncIterator[list[Client]]:
    token = await make_token(settings, "admin", {"*": Role.platform_admin})
    made = [Client(url, token) for url in replicas.urls()]
    yield made
    for client in made:
        await client.aclose()


async def register(settings: ControlSettings, root: Path, *names: str) -> None:
    """Register ``ttd/<name>`` apps, each from its own repository in the session's Gitea."""
    gitea = gitea_support.shared()
    plane = await ControlPlane.open(settings, migrate_db=False)
    try:
        await credentials.set_credential(plane, ADMIN, "ttd", gitea.tokens["ttd"])
        for name in names:
            repo = gitea.push_app("ttd", app_source(root, name), name=name)
            await app_service.create_app(plane, ADMIN, f"ttd/{name}", repo.clone_url)
    finally:
        await plane.close()


async def wait_final(client: Client, deployment_id: int, timeout: float = 120) -> dict[str, Any]:
    return await client.wait_deployment(deployment_id, FINAL, timeout)


async def assert_tag_whole(settings: ControlSettings, app: str, digest: str) -> None:
    """Behind the tag: the manifest, every blob (digests checked) and a valid signature."""
    store = LocalStore(settings.local_store_dir)
    key = load_public_key(settings.signing_key_path.with_suffix(".pub").read_bytes())
    artifact = await pull_verified(store, f"ttd/apps/{app}", "tt02", Trust(keys=[key]))
    assert artifact.files()
    assert await store.resolve(f"ttd/apps/{app}", "tt02") == digest


async def assert_no_claim_left(settings: ControlSettings) -> None:
    plane = await ControlPlane.open(settings, migrate_db=False)
    try:
        async with plane.db.session() as session:
            claimed = (
                await session.scalars(select(Deployment.id).where(Deployment.owner.is_not(None)))
            ).all()
            assert claimed == []
            live = [
                lock.name
                for lock in (await session.scalars(select(Lock))).all()
                if lock.expires > time.time()
            ]
            assert live == []
    finally:
        await plane.close()


def ran_in_order(deployments: list[dict[str, Any]]) -> None:
    """The deployments whose steps ran did so one after the other, in request order."""
    spans = [
        (d["id"], d["steps"][0]["started_at"], d["steps"][-1]["finished_at"])
        for d in sorted(deployments, key=lambda d: d["id"])
        if d["steps"]
    ]
    for (_, _, ended), (_, started, _) in itertools.pairwise(spans):
        assert ended <= started, spans


async def test_20_concurrent_requests_over_two_replicas_run_in_order_and_the_last_wins(
    tmp_path: Path, settings: ControlSettings, clients: list[Client]
) -> None:
    await register(settings, tmp_path, "skjema")
    a, b = clients

    async def request(i: int) -> dict[str, Any]:
        client = (a, b)[i % 2]
        if i % 3 == 0:  # a rotation: a new config version, pinned, and a deploy
            body = {"environment": "tt02", "reason": f"burst {i}"}
            return await client.call("POST", "/api/apps/ttd/skjema/rotations", body, expect=202)
        body = {"environment": "tt02"}
        return await client.call("POST", "/api/apps/ttd/skjema/deployments", body, expect=202)

    accepted = await asyncio.gather(*(request(i) for i in range(20)))
    assert {d["state"] for d in accepted} <= {"queued", "superseded"}
    for d in accepted:
        await wait_final(a, d["id"])
    # Read again once all are through: a later one supersedes an earlier one when it publishes.
    final = [await a.call("GET", f"/api/deployments/{d['id']}") for d in accepted]
    by_id = sorted(final, key=lambda d: d["id"])
    assert [d["state"] for d in by_id if d["state"] != "superseded"] == ["progressing"]
    winner = by_id[-1]
    assert winner["state"] == "progressing"
    ran_in_order(final)
    # The winner built the config version that was current when it was accepted.
    versions = await a.call("GET", "/api/apps/ttd/skjema/config/versions")
    latest = max((v["version"] for v in versions), default=None)
    assert winner["config_version"] == latest
    await assert_tag_whole(settings, "skjema", winner["digest"])
    store = LocalStore(settings.local_store_dir)
    sync = await store.pull("ttd/sync/tt02", "current")
    assert "apps/skjema.yaml" in sync.files()
    await assert_no_claim_left(settings)


# 35 kills, each followed by a replica restart (its start-up dominates the wall time).
@pytest.mark.timeout(1800)
async def test_kill_9_at_every_step_boundary_the_other_replica_finishes_the_deployment(
    tmp_path: Path,
    settings: ControlSettings,
    replicas: Replicas,
    clients: list[Client],
    faults_dir: Path,
) -> None:
    await register(settings, tmp_path, "skjema")
    token = clients[0].token
    points = [(s.name, p) for s in pipeline.steps("rotate") for p in PHASES]
    assert len(points) >= 30
    crashed: list[tuple[str, str, dict[str, Any]]] = []
    for step, phase in points:
        # Both replicas up, so the one that survives the crash is the other one.
        replicas.restart_dead(wait=False)
        replicas.wait_ready()
        key = f"crash-{step}-{phase}"
        (faults_dir / key).write_text(f"{step}:{phase}")
        client = Client(replicas.urls()[0], token)
        try:
            requested = await client.call(
                "POST",
                "/api/apps/ttd/skjema/rotations",
                {"environment": "tt02", "reason": key, "idempotency_key": key},
                expect=202,
            )
            done = await _follow_through_crashes(replicas, token, requested["id"])
        finally:
            await client.aclose()
        assert (faults_dir / f"{key}.fired").exists(), f"no replica crashed at {step}:{phase}"
        assert done["state"] == "progressing", (step, phase, done["reason"])
        assert all(s["finished_at"] for s in done["steps"])
        await assert_tag_whole(settings, "skjema", done["digest"])
        crashed.append((step, phase, done))

    for step, phase, done in crashed:
        # The crashed step was run again by another replica when the crash hit it mid-way (more
        # than twice if a loaded replica also missed its lease: then a third one takes over).
        if phase in ("started", "ran"):
            by_name = {s["name"]: s for s in done["steps"]}
            assert by_name[step]["attempts"] >= 2, (step, phase, done["steps"])
        if phase != "ended" or step != "receivers":
            assert "resumed" in [t["reason"] for t in done["timeline"]], (step, phase)
    await asyncio.sleep(LEASE)
    await assert_no_claim_left(settings)


async def _follow_through_crashes(
    replicas: Replicas, token: str, deployment_id: int, timeout: float = 120
) -> dict[str, Any]:
    """Poll whichever replica is alive until the deployment is final."""
    deadline = time.monotonic() + timeout
    while True:
        replicas.restart_dead(wait=False)  # the crashed one comes back while the other works
        for url in replicas.urls():
            client = Client(url, token)
            try:
                found: dict[str, Any] = await client.call(
                    "GET", f"/api/deployments/{deployment_id}"
                )
            except (httpx2.TransportError, AssertionError, ClientError):  # it died answering
                continue
            finally:
                await client.aclose()
            if found["state"] in FINAL:
                return found
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"deployment {deployment_id} did not finish")
        await asyncio.sleep(0.2)


async def test_a_receiver_that_never_answers_costs_its_timeout_not_the_deployment(
    tmp_path: Path, settings: ControlSettings, clients: list[Client]
) -> None:
    await register(settings, tmp_path, "skjema")
    a, b = clients
    # A listening socket nobody accepts from: connects, takes the request, never answers.
    silent = bind_loopback()
    silent.listen(64)
    try:
        await a.call(
            "POST",
            "/api/clusters/bootstrap",
            {"org": "ttd", "environment": "tt02", "cluster": "tt02-1"},
        )
        port = silent.getsockname()[1]
        await a.call(
            "PUT", "/api/clusters/ttd.tt02.tt02-1/receiver", {"url": f"http://127.0.0.1:{port}"}
        )
        ids = []
        for i in range(4):
            client = (a, b)[i % 2]
            body = {"environment": "tt02", "reason": f"silent {i}"}
            made = await client.call("POST", "/api/apps/ttd/skjema/rotations", body, expect=202)
            ids.append(made["id"])
            if i % 2:  # every other one waits, so some run and some are superseded in the queue
                await wait_final(client, made["id"])
        for i in ids:
            await wait_final(a, i)
        final = [await a.call("GET", f"/api/deployments/{i}") for i in ids]
        assert "failed" not in {d["state"] for d in final}
        assert final[-1]["state"] == "progressing"
        ran = [d for d in final if d["steps"]]
        assert len(ran) >= 2
        ran_in_order(final)
        for deployment in ran:
            warnings = [t for t in deployment["timeline"] if t["reason"] == "receiver"]
            assert warnings, deployment["timeline"]
            assert all(t["severity"] == "warning" for t in warnings)
        await assert_tag_whole(settings, "skjema", final[-1]["digest"])
    finally:
        silent.close()
