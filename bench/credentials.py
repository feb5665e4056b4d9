"""Credentials operator benchmark: N AppCredentials (PostgreSQL + Redis each) converge.

Prints one JSON document:

- ``all_ready_s``: from the first create until every AppCredentials is Ready for its generation
  (target < 90 s for 500); ``peak_rss_mib``: the operator's VmHWM (target < 250 MiB);
- per reconcile (from the operator's ``/metrics``): Kubernetes API requests and writes of the
  credentials operator, reconciles by result; the janitor's requests separately; Events posted;
- ``idle``: counters over ``--idle`` seconds after convergence (the issue's 5 minutes by
  default; the target is 0 writes).

    .venv/bin/python bench/credentials.py [--apps 500] [--workers 16] [--idle 300]
        [--baseline-src DIR]

``--baseline-src DIR`` runs the same scenario first with the operator process importing fjord
from DIR (e.g. main's ``src`` from ``git archive``), then from this checkout, and prints both
with the candidate/baseline ratios (compare within one run only: the machine is shared).

It starts its own local cluster (etcd, apiserver, controller-manager, scheduler, kwok), a
PostgreSQL and a Redis, and runs the operator (credentials + janitor) as a subprocess.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import yaml

from bench_compare import compare
from fjord.devcluster import processes
from fjord.devcluster.cluster import LocalCluster
from fjord.devcluster.postgres import LocalPostgres
from fjord.devcluster.redis import LocalRedis
from fjord.kube import Kube, is_true
from fjord.spec.infra import API_VERSION

REPO = Path(__file__).resolve().parents[1]
CRD = REPO / "deploy" / "crds" / "appcredentials.fjord.dev.yaml"
NAMESPACE = "bench"
ADMIN = ("fjord-system", "credentials-admin")


def status_kib(pid: int, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text → {(name, sorted labels): value} for fjord's operator counters."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    text = httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    for line in text.splitlines():
        if not line.startswith("fjord_operator_") or "_created" in line.split("{")[0]:
            continue
        head, value = line.rsplit(" ", 1)
        name, _, rest = head.partition("{")
        labels = tuple(
            sorted(
                (k, v.strip('"'))
                for k, v in (p.split("=", 1) for p in rest.rstrip("}").split(",") if p)
            )
        )
        found[(name, labels)] = float(value)
    return found


def total(
    snapshot: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **match: str
) -> float:
    return sum(
        v
        for (n, labels), v in snapshot.items()
        if n == name and all((k, val) in labels for k, val in match.items())
    )


def by_label(
    snapshot: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    name: str,
    label: str,
    **match: str,
) -> dict[str, float]:
    out: dict[str, float] = {}
    for (n, labels), v in snapshot.items():
        if n == name and all((k, val) in labels for k, val in match.items()):
            key = dict(labels).get(label, "")
            out[key] = out.get(key, 0) + v
    return out


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def ready_count(items: list[dict[str, Any]]) -> int:
    return sum(
        1
        for o in items
        if is_true(o, "Ready")
        and (o.get("status") or {}).get("observedGeneration") == o["metadata"].get("generation")
    )


async def setup(kube: Kube, postgres: LocalPostgres, redis: LocalRedis) -> None:
    crd = yaml.safe_load(CRD.read_text())
    await kube.apply(crd, field_manager="bench", force=True)
    await kube.wait_for(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        crd["metadata"]["name"],
        until=lambda o: is_true(o, "Established"),
        timeout=60,
    )
    for ns in (NAMESPACE, ADMIN[0]):
        await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": ADMIN[1], "namespace": ADMIN[0]},
            "data": {"postgresql-url": b64(postgres.dsn), "redis-url": b64(redis.url)},
        },
        force=True,
    )


def app(i: int) -> dict[str, Any]:
    name = f"app{i:04d}"
    return {
        "apiVersion": API_VERSION,
        "kind": "AppCredentials",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "postgresql": {"databases": [{"name": "main", "secretName": f"{name}-pg-main"}]},
            "redis": {"keyPrefix": f"{name}:", "secretName": f"{name}-redis"},
        },
    }


def counters(port: int) -> dict[str, Any]:
    snap = metrics(port)
    return {
        "reconciles": by_label(
            snap, "fjord_operator_reconciles_total", "result", operator="credentials"
        ),
        "requests": by_label(
            snap, "fjord_operator_api_requests_total", "verb", operator="credentials"
        ),
        "writes": by_label(snap, "fjord_operator_api_writes_total", "verb", operator="credentials"),
        "janitor_requests": by_label(
            snap, "fjord_operator_api_requests_total", "verb", operator="janitor"
        ),
        "janitor_writes": total(snap, "fjord_operator_api_writes_total", operator="janitor"),
        "finalizer_reconciles": total(
            snap, "fjord_operator_reconciles_total", operator="credentials-finalizer"
        ),
    }


async def converge(
    kube: Kube, op: processes.ProcessRecord, port: int, apps: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    started = time.monotonic()
    cpu_before = cpu_seconds(op.pid) or 0.0
    load_before = load_average()
    sem = asyncio.Semaphore(20)

    async def create(i: int) -> None:
        async with sem:
            await kube.create(app(i))

    await asyncio.gather(*(create(i) for i in range(apps)))
    created_s = time.monotonic() - started
    while True:
        items = await kube.items(API_VERSION, "AppCredentials", NAMESPACE)
        if ready_count(items) == apps:
            break
        if not processes.is_alive(op):
            raise RuntimeError("operator died:\n" + processes.log_tail(op.log))
        if time.monotonic() - started > 1800:
            raise RuntimeError(f"only {ready_count(items)}/{apps} Ready after 30 min")
        await asyncio.sleep(1.0)
    all_ready_s = time.monotonic() - started
    cpu_used = (cpu_seconds(op.pid) or 0.0) - cpu_before
    after = counters(port)
    reconciles = sum(after["reconciles"].values())
    requests = sum(after["requests"].values())
    writes = sum(after["writes"].values())
    events = await kube.items("events.k8s.io/v1", "Event", NAMESPACE)
    return {
        "apps": apps,
        "create_crs_s": round(created_s, 2),
        "all_ready_s": round(all_ready_s, 2),
        "ready_per_s": round(apps / all_ready_s, 1),
        "operator_cpu_s": round(cpu_used, 2),
        "operator_cpu_ms_per_app": round(cpu_used * 1000 / apps, 1),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "peak_rss_mib": status_kib(op.pid, "VmHWM"),
        "rss_after_mib": status_kib(op.pid, "VmRSS"),
        "reconciles": after["reconciles"],
        "api_requests": after["requests"],
        "api_writes": after["writes"],
        "api_requests_per_reconcile": round(requests / reconciles, 2),
        "api_writes_per_reconcile": round(writes / reconciles, 2),
        "api_writes_per_app": round(writes / apps, 2),
        "events_posted": len(events),
        "janitor_requests": after["janitor_requests"],
    }, after


async def idle(port: int, seconds: float, before: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(seconds)
    after = counters(port)
    return {
        "seconds": seconds,
        "reconciles": delta(after["reconciles"], before["reconciles"]),
        "api_requests": delta(after["requests"], before["requests"]),
        "api_writes": sum(after["writes"].values()) - sum(before["writes"].values()),
        "janitor_requests": delta(after["janitor_requests"], before["janitor_requests"]),
        "janitor_writes": after["janitor_writes"] - before["janitor_writes"],
    }


def external(postgres: LocalPostgres, redis: LocalRedis) -> dict[str, int]:
    with psycopg.connect(postgres.dsn) as conn:
        roles = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'fjord_bench_%'")
        dbs = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'bench_%'")
        role_count, db_count = roles.fetchone(), dbs.fetchone()
    with redis.client() as client:
        users = [u for u in client.execute_command("ACL", "USERS") if u.startswith(b"fjord.")]
    return {
        "postgresql_login_roles": int(role_count[0]) if role_count else 0,
        "postgresql_databases": int(db_count[0]) if db_count else 0,
        "redis_acl_users": len(users),
    }


async def run_once(args: argparse.Namespace, operator_src: str | None) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="fjord-bench-cred-"))
    local = LocalCluster(root / "cluster", "bench-cred")
    postgres = LocalPostgres.start(root / "postgres")
    redis = LocalRedis.start(root / "redis")
    op: processes.ProcessRecord | None = None
    try:
        state = local.up(nodes=1, flux=False)
        async with await Kube.connect(state.kubeconfig) as kube:
            await setup(kube, postgres, redis)
            port = processes.free_port()
            argv = [
                sys.executable, "-m", "fjord.operators.common.main", "operator", "run",
                "--only", "credentials", "--only", "janitor", "-n", NAMESPACE,
                "--kubeconfig", str(state.kubeconfig), "--liveness", "",
                "--metrics", f"127.0.0.1:{port}",
                "--credentials-admin-secret", "/".join(ADMIN),
                "--workers", str(args.workers),
            ]  # fmt: skip
            env = {"PYTHONPATH": operator_src} if operator_src else None
            op = processes.start("credentials-operator", argv, log=root / "operator.log", env=env)
            processes.wait_until(
                "operator metrics", lambda: isinstance(metrics(port), dict), watch=[op], timeout=60
            )
            result, after = await converge(kube, op, port, args.apps)
            await asyncio.sleep(5)  # late watch events of the last status writes
            settled = counters(port)
            quiet = await idle(port, args.idle, settled)
            result["writes_after_ready_settle"] = sum(settled["writes"].values()) - sum(
                after["writes"].values()
            )
            result["peak_rss_mib_end"] = status_kib(op.pid, "VmHWM")
            result["external"] = external(postgres, redis)
    finally:
        if op is not None:
            processes.stop(op)
        local.down()
        postgres.destroy()
        redis.destroy()
        shutil.rmtree(root, ignore_errors=True)
    return {"converge": result, "idle": quiet}


RATIOS = ("all_ready_s", "operator_cpu_s", "peak_rss_mib", "api_writes_per_app")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    head = {
        "benchmark": "credentials",
        "workers": args.workers,
        "cpus": len(os.sched_getaffinity(0)),
    }
    if not args.baseline_src:
        return {**head, **await run_once(args, None)}
    baseline = await run_once(args, args.baseline_src)
    candidate = await run_once(args, None)
    return {
        **head,
        "baseline_src": args.baseline_src,
        **compare(baseline["converge"], candidate["converge"], RATIOS),
        "idle": {"baseline": baseline["idle"], "candidate": candidate["idle"]},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--apps", type=int, default=500)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--idle", type=float, default=300.0, help="idle period in seconds")
    parser.add_argument("--baseline-src", help="run the operator from this src/ first")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
