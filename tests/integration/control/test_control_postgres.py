"""The control plane on a real PostgreSQL: migrations up and down, and the services under
concurrency (deploy serialisation, idempotency races, parallel event ingest)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from control_support import fresh_database
from sqlalchemy import create_engine, func, inspect, select

import gitea_support
from fjord.control import (
    ControlPlane,
    ControlSettings,
    apps,
    clusters,
    credentials,
    deploys,
    events,
    migrate,
    queries,
    system_actor,
)
from fjord.control.models import Base, FluxEvent
from fjord.control.worker import drain
from fjord.devcluster.postgres import LocalPostgres
from fjord.spec import default_platform
from fjord.spec.platform import IngressRouting

ADMIN = system_actor("alice")
CLUSTER = "ttd.tt02.tt02-1"


@pytest.fixture
def database(postgres: LocalPostgres) -> Iterator[str]:
    with fresh_database(postgres) as url:
        yield url


def test_postgres_migrates_up_and_down(database: str) -> None:
    assert migrate.current(database) is None
    migrate.upgrade(database)
    assert migrate.current(database) == migrate.head()
    engine = create_engine(database)
    try:
        assert set(inspect(engine).get_table_names()) - {"alembic_version"} == set(
            Base.metadata.tables
        )
    finally:
        engine.dispose()
    migrate.downgrade(database)
    assert migrate.current(database) is None
    engine = create_engine(database)
    try:
        assert set(inspect(engine).get_table_names()) - {"alembic_version"} == set()
    finally:
        engine.dispose()


async def test_services_on_postgres_under_concurrency(database: str, tmp_path: Path) -> None:
    gitea = gitea_support.shared()
    repo = gitea.push_app("ttd", "platform-app", name="skjema")
    platform = default_platform().model_copy(update={"routing": IngressRouting(flavour="ingress")})
    settings = ControlSettings(data_dir=tmp_path / "data", database_url=database, platform=platform)
    plane = await ControlPlane.open(settings)
    try:
        assert plane.db.dialect == "postgresql"
        await credentials.set_credential(plane, ADMIN, "ttd", gitea.tokens["ttd"])
        await apps.create_app(plane, ADMIN, "ttd/skjema", repo.clone_url)
        await clusters.bootstrap(plane, ADMIN, "ttd", "tt02", "tt02-1")
        token = await clusters.cluster_token(plane, ADMIN, CLUSTER)

        # The same idempotency key from four requests at once: one deployment.
        same = await asyncio.gather(
            *(
                deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02", idempotency_key="k")
                for _ in range(4)
            )
        )
        assert len({d.id for d in same}) == 1
        # Different keys at once: queued in order, the newest supersedes the others and wins.
        results = await asyncio.gather(
            *(
                deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02", idempotency_key=f"k{i}")
                for i in range(3)
            )
        )
        await drain(plane)
        final = [await queries.get_deployment(plane, ADMIN, r.id) for r in results]
        assert sorted(f.state for f in final) == ["progressing", "superseded", "superseded"]
        winner = next(f for f in final if f.state == "progressing")

        # Many events at once, each twice: each recorded once; the deployment ends ready.
        bodies = [
            (
                '{"involvedObject":{"kind":"Kustomization","namespace":"ttd-skjema",'
                f'"name":"skjema"}},"severity":"info","reason":"Progressing","message":"step {i}",'
                f'"metadata":{{"revision":"tt02@{winner.digest}"}}}}'
            ).encode()
            for i in range(20)
        ]
        done = (
            '{"involvedObject":{"kind":"Kustomization","namespace":"ttd-skjema","name":"skjema"},'
            '"severity":"info","reason":"ReconciliationSucceeded","message":"applied",'
            f'"metadata":{{"revision":"tt02@{winner.digest}"}}}}'
        ).encode()
        await asyncio.gather(
            *(
                events.ingest(plane, CLUSTER, body, events.sign(token, body))
                for body in [*bodies, *bodies]
            )
        )
        await events.ingest(plane, CLUSTER, done, events.sign(token, done))
        async with plane.db.session() as session:
            assert await session.scalar(select(func.count()).select_from(FluxEvent)) == 21
        ready = await queries.get_deployment(plane, ADMIN, winner.id)
        assert ready.state == "ready"
        assert ready.clusters[0].revision == f"tt02@{winner.digest}"
    finally:
        await plane.close()
