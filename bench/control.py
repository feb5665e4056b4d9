"""Control-plane benchmark; prints JSON.

* API latency (median, p99) of ``GET …/status`` and ``GET …/history`` over real HTTP with
  100k deployments stored, on SQLite and on PostgreSQL;
* Flux event ingest rate: signed events posted over HTTP, concurrently;
* uploads of a deploy to an environment with 20 clusters vs 1 (blobs, bytes, manifests
  written to the store).

    .venv/bin/python bench/control.py [--deployments 100000] [--requests 300] [--events 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import psycopg
from sqlalchemy import create_engine, insert

from fjord.api.client import FjordClient
from fjord.api.server import bind_loopback
from fjord.control import (
    ControlPlane,
    ControlSettings,
    Role,
    clusters,
    deploys,
    events,
    system_actor,
)
from fjord.control import apps as app_service
from fjord.control.models import (
    App,
    Cluster,
    ClusterApp,
    Deployment,
    DeploymentCluster,
    Environment,
    Org,
    Release,
    TimelineEntry,
)
from fjord.control.tokens import create_token
from fjord.devcluster.postgres import LocalPostgres
from fjord.spec import default_platform
from fjord.spec.platform import Cluster as ClusterConfig
from fjord.spec.platform import IngressRouting

REPO = Path(__file__).resolve().parents[1]
ADMIN = system_actor("bench")
APPS = 100
RELEASES_PER_APP = 10


def release_digest(release_id: int) -> str:
    """The digest the seeded release ``release_id`` gets (so events can name real releases)."""
    return f"sha256:{release_id:064x}"


def platform(clusters_per_env: int = 1) -> Any:
    base = default_platform().model_copy(update={"routing": IngressRouting(flavour="ingress")})
    names = {
        "tt02": [ClusterConfig(name=f"tt02-{i}") for i in range(1, clusters_per_env + 1)],
        "production": [ClusterConfig(name="production-1")],
    }
    orgs = {k: v.model_copy(update={"clusters": names}) for k, v in base.orgs.items()}
    return base.model_copy(update={"orgs": orgs})


async def seed(settings: ControlSettings, deployments: int) -> None:
    """Bulk-insert apps, releases and ``deployments`` finished deployments (Core, executemany)."""
    plane = await ControlPlane.open(settings)  # migrates and loads the catalogue
    await plane.close()
    url = settings.database.replace("sqlite+aiosqlite://", "sqlite://", 1)
    engine = create_engine(url)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        org_id = conn.execute(Org.__table__.select().where(Org.name == "ttd")).first()[0]  # type: ignore[index]
        envs = {r.name: r.id for r in conn.execute(Environment.__table__.select())}
        cluster_ids = [
            r.id for r in conn.execute(Cluster.__table__.select().where(Cluster.org_id == org_id))
        ]
        conn.execute(
            insert(App),
            [
                {
                    "id": i + 1,
                    "org_id": org_id,
                    "name": f"app{i:03d}",
                    "source": "/src",
                    "created_at": now,
                }
                for i in range(APPS)
            ],
        )
        releases = []
        for app in range(1, APPS + 1):
            for r in range(RELEASES_PER_APP):
                releases.append(
                    {
                        "id": (app - 1) * RELEASES_PER_APP + r + 1,
                        "app_id": app,
                        "digest": release_digest((app - 1) * RELEASES_PER_APP + r + 1),
                        "source": "/src",
                        "revision": f"main@sha1:{uuid.uuid4().hex}",
                        "config_version": r,
                        "builder": "fjord/bench",
                        "environments": ["tt02", "production"],
                        "files": {"tt02/a.yaml": "kind: ConfigMap\n"},
                        "config": {},
                        "created_at": now,
                    }
                )
        conn.execute(insert(Release), releases)
        rows, clusters_rows, timeline = [], [], []
        env_ids = list(envs.values())
        for i in range(deployments):
            app = i % APPS + 1
            release = (app - 1) * RELEASES_PER_APP + (i // APPS) % RELEASES_PER_APP + 1
            at = now - dt.timedelta(seconds=deployments - i)
            rows.append(
                {
                    "id": i + 1,
                    "app_id": app,
                    "environment_id": env_ids[i % len(env_ids)],
                    "release_id": release,
                    "kind": "deploy",
                    "state": "ready",
                    "requested_by": "bench",
                    "created_at": at,
                    "updated_at": at,
                    "finished_at": at,
                }
            )
            clusters_rows.append(
                {
                    "deployment_id": i + 1,
                    "cluster_id": cluster_ids[0],
                    "state": "ready",
                    "revision": "tt02@sha256:x",
                    "updated_at": at,
                }
            )
            timeline.append(
                {
                    "deployment_id": i + 1,
                    "at": at,
                    "severity": "info",
                    "reason": "ready",
                    "message": "ready",
                }
            )
            if len(rows) == 10_000:
                conn.execute(insert(Deployment), rows)
                conn.execute(insert(DeploymentCluster), clusters_rows)
                conn.execute(insert(TimelineEntry), timeline)
                rows, clusters_rows, timeline = [], [], []
        if rows:
            conn.execute(insert(Deployment), rows)
            conn.execute(insert(DeploymentCluster), clusters_rows)
            conn.execute(insert(TimelineEntry), timeline)
        conn.execute(
            insert(ClusterApp),
            [
                {"cluster_id": cluster_ids[0], "app_id": a, "ready": True, "updated_at": now}
                for a in range(1, APPS + 1)
            ],
        )
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for table in ("deployments", "releases", "apps"):
                # Fixed table names, no input: the sequences follow the bulk-inserted ids.
                sql = f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # noqa: S608, E501
                conn.exec_driver_sql(sql)
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "requests": len(ordered),
    }


async def latency(url: str, token: str, requests: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with FjordClient.remote(url, token, timeout=60) as api:
        for name, path in (
            ("status", "/api/apps/ttd/app{n:03d}/status"),
            ("history", "/api/apps/ttd/app{n:03d}/history?limit=50"),
        ):
            samples = []
            for i in range(requests):
                start = time.perf_counter()
                # The client's raw call (errors raise): the server's latency, not pydantic's
                # parsing of the answer on this side.
                await api.request("GET", path.format(n=i % APPS))
                samples.append(time.perf_counter() - start)
            out[name] = percentiles(samples)
    return out


async def ingest_rate(
    url: str, settings: ControlSettings, total: int, concurrency: int
) -> dict[str, Any]:
    plane = await ControlPlane.open(settings)
    try:
        await clusters.bootstrap(plane, ADMIN, "ttd", "tt02", "tt02-1")
        token = await clusters.cluster_token(plane, ADMIN, "ttd.tt02.tt02-1")
    finally:
        await plane.close()
    bodies = [
        json.dumps(
            {
                "involvedObject": {
                    "kind": "Kustomization",
                    "namespace": f"ttd-app{i % APPS:03d}",
                    "name": f"app{i % APPS:03d}",
                },
                "severity": "info",
                "reason": "ReconciliationSucceeded",
                "message": f"applied {i}",
                # A released digest of that app: the path real clusters take (an unknown
                # digest is flagged and audited, a different path).
                "metadata": {
                    "revision": "tt02@"
                    + release_digest(
                        (i % APPS) * RELEASES_PER_APP + (i // APPS) % RELEASES_PER_APP + 1
                    )
                },
            }
        ).encode()
        for i in range(total)
    ]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker(api: FjordClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            await api.flux_event("ttd.tt02.tt02-1", body, events.sign(token, body))

    async with FjordClient.remote(url, timeout=60) as api:
        start = time.perf_counter()
        await asyncio.gather(*(worker(api) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {
        "events": total,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "per_second": round(total / elapsed, 1),
    }


async def database_run(
    name: str, settings: ControlSettings, args: argparse.Namespace
) -> dict[str, Any]:
    start = time.perf_counter()
    await seed(settings, args.deployments)
    seeded = time.perf_counter() - start
    plane = await ControlPlane.open(settings)
    try:
        token = (await create_token(plane, ADMIN, "bench", {"*": Role.platform_admin})).token
    finally:
        await plane.close()
    with served(settings) as url:
        result = await latency(url, token, args.requests)
        result["ingest"] = await ingest_rate(url, settings, args.events, args.concurrency)
    result["deployments_stored"] = args.deployments
    result["seed_seconds"] = round(seeded, 1)
    return {name: result}


@contextlib.contextmanager
def served(settings: ControlSettings) -> Iterator[str]:
    """``fjord serve`` in its own process: a client in the same process would share the GIL
    with the server and measure thread switching instead of the API."""
    sock = bind_loopback()
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "FJORD_DATA_DIR": str(settings.data_dir)}
    if settings.database_url:
        env["FJORD_DATABASE_URL"] = settings.database_url
    process = subprocess.Popen(
        [sys.executable, "-m", "fjord.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx2.get(url + "/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("fjord serve did not start")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def store_usage(root: Path) -> dict[str, int]:
    blobs = [p for p in root.rglob("blobs/sha256/*") if p.is_file()]
    return {"blobs": len(blobs), "bytes": sum(p.stat().st_size for p in blobs)}


async def fan_out(work: Path) -> dict[str, Any]:
    """One deploy to tt02 with 1 and with 20 clusters: what lands in the store."""
    out: dict[str, Any] = {}
    source = work / "skjema"
    shutil.copytree(REPO / "examples" / "platform-app", source)
    for count in (1, 20):
        settings = ControlSettings(data_dir=work / f"fan{count}", platform=platform(count))
        plane = await ControlPlane.open(settings)
        try:
            await app_service.create_app(plane, ADMIN, "ttd/skjema", str(source))
            start = time.perf_counter()
            deployment = await deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02")
            elapsed = time.perf_counter() - start
            assert deployment.state == "progressing", deployment.reason
            out[f"{count}_clusters"] = {
                **store_usage(settings.local_store_dir),
                "deploy_seconds": round(elapsed, 2),
                "clusters_followed": len(deployment.clusters),
            }
        finally:
            await plane.close()
    out["same_uploads"] = {
        k: v for k, v in out["1_clusters"].items() if k in ("blobs", "bytes")
    } == {k: v for k, v in out["20_clusters"].items() if k in ("blobs", "bytes")}
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deployments", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fjord-bench-control-"))
    report: dict[str, Any] = {"cpus": os.cpu_count()}
    try:
        sqlite = ControlSettings(data_dir=work / "sqlite", platform=platform())
        report.update(await database_run("sqlite", sqlite, args))
        if not args.skip_postgres:
            server = LocalPostgres.start(work / "pg")
            try:
                with psycopg.connect(server.dsn, autocommit=True) as conn:
                    conn.execute("CREATE DATABASE fjord_bench")
                url = server.dsn.rsplit("/", 1)[0].replace(
                    "postgresql://", "postgresql+psycopg://", 1
                )
                pg = ControlSettings(
                    data_dir=work / "pgdata", platform=platform(), database_url=f"{url}/fjord_bench"
                )
                report.update(await database_run("postgresql", pg, args))
            finally:
                server.stop()
        report["fan_out"] = await fan_out(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    asyncio.run(main())
