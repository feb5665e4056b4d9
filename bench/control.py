"""Control-plane benchmark; prints JSON.

* API latency (median, p99) of ``GET …/status`` and ``GET …/history`` over real HTTP with
  100k deployments stored, on SQLite and on PostgreSQL;
* Flux event ingest rate: signed events posted over HTTP, concurrently;
* uploads of a deploy to an environment with 20 clusters vs 1 (blobs, bytes, manifests
  written to the store);
* the deployment pipeline on PostgreSQL with 1 and with 2 ``fjord serve`` replicas: deploys per
  minute (every deploy a rotation, so each builds, pushes and moves the tag), and the takeover
  time after a replica is killed with SIGKILL mid-deploy (from the kill to the other replica
  resuming the deployment; median and max), with the lease it depends on.

    .venv/bin/python bench/control.py [--deployments 100000] [--requests 300] [--events 2000]
        [--pipeline-apps 6] [--pipeline-rounds 3] [--kills 6] [--lease 5] [--only-pipeline]
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

from fjord.api.client import ClientError, FjordClient
from fjord.api.server import bind_loopback
from fjord.control import (
    ControlPlane,
    ControlSettings,
    Role,
    clusters,
    credentials,
    deploys,
    events,
    faults,
    queries,
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
from fjord.control.views import DeploymentView
from fjord.control.worker import drain
from fjord.devcluster import gitea as local_gitea
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
                    "source": "http://gitea.invalid/ttd/app.git",
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
                        "source": "http://gitea.invalid/ttd/app.git",
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
        for name, path, count in (
            ("status", "/api/apps/ttd/app{n:03d}/status", requests),
            ("history", "/api/apps/ttd/app{n:03d}/history?limit=50", requests),
            ("outcomes", "/api/apps/ttd/app{n:03d}/outcomes", requests),
            # Every stored deployment lies inside the outcomes' 90 days: the scrape's worst case.
            ("metrics", "/metrics", max(3, requests // 10)),
        ):
            samples = []
            for i in range(count):
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


async def _fan_out_once(work: Path, count: int, repo: str, read_token: str) -> dict[str, Any]:
    settings = ControlSettings(data_dir=work / f"fan{count}", platform=platform(count))
    plane = await ControlPlane.open(settings)
    try:
        await credentials.set_credential(plane, ADMIN, "ttd", read_token)
        await app_service.create_app(plane, ADMIN, "ttd/skjema", repo)
        start = time.perf_counter()
        requested = await deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02", git_ref="v1.0.0")
        await drain(plane)
        deployment = await queries.get_deployment(plane, ADMIN, requested.id)
        elapsed = time.perf_counter() - start
        assert deployment.state == "progressing", deployment.reason
        return {
            **store_usage(settings.local_store_dir),
            "deploy_seconds": round(elapsed, 2),
            "clusters_followed": len(deployment.clusters),
        }
    finally:
        await plane.close()


async def fan_out(work: Path) -> dict[str, Any]:
    """One deploy to tt02 with 1 and with 20 clusters: what lands in the store."""
    out: dict[str, Any] = {}
    with local_gitea.LocalGitea.start(work / "gitea") as gitea:
        seeded, tokens = local_gitea.seed(gitea, {"ttd/skjema": REPO / "examples" / "platform-app"})
        for count in (1, 20):
            out[f"{count}_clusters"] = await _fan_out_once(
                work, count, seeded["ttd/skjema"].clone_url, tokens["ttd"]
            )

    out["same_uploads"] = {
        k: v for k, v in out["1_clusters"].items() if k in ("blobs", "bytes")
    } == {k: v for k, v in out["20_clusters"].items() if k in ("blobs", "bytes")}
    return out


# ---- the deployment pipeline with several replicas -----------------------------------------


def spawn_replica(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``fjord serve`` in its own process; returns it and its URL once it answers."""
    sock = bind_loopback()
    port = sock.getsockname()[1]
    sock.close()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "fjord.cli", "serve", "--port", str(port)],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx2.get(url + "/openapi.json", timeout=2).status_code == 200:
                return process, url
        except httpx2.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"fjord serve did not start (log: {log})")
        time.sleep(0.1)


def stop_replicas(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        process.wait(timeout=30)


class AppRepos:
    """The bench's Gitea, started on first use: each app is pushed as its own repository."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.gitea: local_gitea.LocalGitea | None = None
        self.read_token = ""

    def push(self, source: Path, name: str) -> str:
        if self.gitea is None:
            self.gitea = local_gitea.LocalGitea.start(self.root)
            self.gitea.create_org("ttd")
            self.read_token = self.gitea.reader_token("ttd")
        repository = f"ttd/{name}-{uuid.uuid4().hex[:8]}"
        self.gitea.create_repo(repository)
        self.gitea.push_directory(repository, source, tag="v1.0.0")
        return self.gitea.clone_url(repository)

    def stop(self) -> None:
        if self.gitea is not None:
            self.gitea.stop()


def example_app(root: Path, name: str) -> Path:
    target = root / name
    if not target.exists():
        shutil.copytree(REPO / "examples" / "platform-app", target)
        spec = target / "fjord.yaml"
        spec.write_text(spec.read_text().replace("app: skjema", f"app: {name}", 1))
    return target


async def pipeline_setup(
    server: LocalPostgres, work: Path, name: str, apps: int, lease: float, repos: AppRepos
) -> tuple[dict[str, str], str]:
    """A fresh database with ``apps`` apps; the replicas' environment and an admin token."""
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    settings = ControlSettings(
        data_dir=work / name, platform=platform(), database_url=f"{url}/{name}"
    )
    plane = await ControlPlane.open(settings)
    try:
        for i in range(apps):
            source = example_app(work / "sources", f"app{i}")
            repo = repos.push(source, f"app{i}")
            await app_service.create_app(plane, ADMIN, f"ttd/app{i}", repo)
        await credentials.set_credential(plane, ADMIN, "ttd", repos.read_token)
        token = (await create_token(plane, ADMIN, "bench", {"*": Role.platform_admin})).token
    finally:
        await plane.close()
    platform_file = work / f"{name}.yaml"
    platform_file.write_text(
        json.dumps(platform().model_dump(mode="json", by_alias=True, exclude_none=True))
    )
    env = {
        "FJORD_DATA_DIR": str(settings.data_dir),
        "FJORD_DATABASE_URL": settings.database,
        "FJORD_PLATFORM": str(platform_file),
        "FJORD_LEASE_SECONDS": str(lease),
    }
    return env, token


SETTLED = ("progressing", "ready", "failed", "superseded")


async def rotate_and_wait(
    api: FjordClient, app: str, key: str | None = None, timeout: float = 300
) -> DeploymentView:
    """A rotation (new config version, so a new digest), followed until it is published."""
    requested = await api.rotate(f"ttd/{app}", "tt02", reason="bench", idempotency_key=key)
    return await api.wait_deployment(requested.id, until=SETTLED, timeout=timeout, interval=0.05)


async def throughput(
    server: LocalPostgres,
    work: Path,
    replicas: int,
    apps: int,
    rounds: int,
    lease: float,
    repos: AppRepos,
) -> dict[str, Any]:
    """Deploys per minute: ``apps`` apps deployed ``rounds`` times each, all apps at once."""
    env, token = await pipeline_setup(server, work, f"pipe{replicas}", apps, lease, repos)
    logs = work / f"pipe{replicas}.log"
    started = [spawn_replica(env, logs) for _ in range(replicas)]
    clients = [FjordClient.remote(url, token, timeout=60) for _, url in started]
    try:

        async def one_app(i: int) -> list[str]:
            api = clients[i % len(clients)]
            return [(await rotate_and_wait(api, f"app{i}")).state for _ in range(rounds)]

        start = time.perf_counter()
        outcomes = await asyncio.gather(*(one_app(i) for i in range(apps)))
        elapsed = time.perf_counter() - start
    finally:
        for client in clients:
            await client.aclose()
        stop_replicas([p for p, _ in started])
    states = [s for app in outcomes for s in app]
    return {
        "replicas": replicas,
        "deploys": len(states),
        "failed": states.count("failed"),
        "seconds": round(elapsed, 2),
        "per_minute": round(len(states) / elapsed * 60, 1),
    }


async def takeover(
    server: LocalPostgres, work: Path, kills: int, lease: float, repos: AppRepos
) -> dict[str, Any]:
    """Kill the replica running a deploy (SIGKILL at a step start); time until the other one
    resumes it (its "resumed" timeline entry) and until the deployment is published."""
    env, token = await pipeline_setup(server, work, "takeover", 1, lease, repos)
    plans = work / "faults"
    plans.mkdir()
    env[faults.VARIABLE] = str(plans)
    logs = work / "takeover.log"
    members = [spawn_replica(env, logs) for _ in range(2)]
    resumed_after: list[float] = []
    finished_after: list[float] = []
    points = ["pushing", "sync-root", "tagging", "building", "placing", "receivers"]
    try:
        for i in range(kills):
            # Both replicas up before each kill, so the survivor is always the other one.
            members = [m if m[0].poll() is None else spawn_replica(env, logs) for m in members]
            key = f"kill-{i}"
            (plans / key).write_text(f"{points[i % len(points)]}:started")
            async with FjordClient.remote(members[i % 2][1], token, timeout=60) as api:
                requested = await api.rotate("ttd/app0", "tt02", reason=key, idempotency_key=key)
            done = await _through_kill(members, token, requested.id)
            killed_at = (plans / f"{key}.fired").stat().st_ctime  # the rename, just before SIGKILL
            resumed = next(t for t in done.timeline if t.reason == "resumed")
            assert done.state == "progressing", done.reason
            resumed_after.append(resumed.at.timestamp() - killed_at)
            finished_after.append(done.updated_at.timestamp() - killed_at)
    finally:
        stop_replicas([p for p, _ in members])
    return {
        "lease_seconds": lease,
        "kills": kills,
        "resumed_after_kill": {
            "median_s": round(statistics.median(resumed_after), 2),
            "max_s": round(max(resumed_after), 2),
        },
        "published_after_kill": {
            "median_s": round(statistics.median(finished_after), 2),
            "max_s": round(max(finished_after), 2),
        },
    }


async def _through_kill(
    members: list[tuple[subprocess.Popen[bytes], str]], token: str, deployment_id: int
) -> DeploymentView:
    """Poll whichever replica is alive until the deployment is published."""
    while True:
        for process, url in members:
            if process.poll() is not None:
                continue
            try:
                async with FjordClient.remote(url, token, timeout=10) as api:
                    found = await api.get_deployment(deployment_id)
            except ClientError:
                continue
            if found.state in SETTLED:
                return found
            break
        await asyncio.sleep(0.05)


async def pipeline_run(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    server = LocalPostgres.start(work / "pipeline-pg")
    repos = AppRepos(work / "gitea")
    try:
        one = await throughput(
            server, work, 1, args.pipeline_apps, args.pipeline_rounds, args.lease, repos
        )
        two = await throughput(
            server, work, 2, args.pipeline_apps, args.pipeline_rounds, args.lease, repos
        )
        taken = await takeover(server, work, args.kills, args.lease, repos)
    finally:
        repos.stop()
        server.stop()
    return {
        "deploys_per_minute": {
            "1_replica": one,
            "2_replicas": two,
            "ratio_2_to_1": round(two["per_minute"] / one["per_minute"], 2),
        },
        "takeover": taken,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deployments", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--pipeline-apps", type=int, default=6)
    parser.add_argument("--pipeline-rounds", type=int, default=3)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--lease", type=float, default=5.0)
    parser.add_argument("--only-pipeline", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fjord-bench-control-"))
    report: dict[str, Any] = {"cpus": os.cpu_count()}
    try:
        if args.only_pipeline:
            report["pipeline"] = await pipeline_run(work, args)
            json.dump(report, sys.stdout, indent=2)
            print()
            return
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
        report["pipeline"] = await pipeline_run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    asyncio.run(main())
