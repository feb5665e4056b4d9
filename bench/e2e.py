"""End-to-end benchmark: ``fjord dev up`` with real nodes against kwok-only, and deploy → served.

Prints one JSON document, everything measured in the same run:

- ``kwok_only`` and ``real``: wall time of the real command ``fjord dev up [--kwok-only]`` (a
  subprocess, fresh state directory, binaries and the sample apps' Debian base image already
  built: "warm") until it exits 0 with the sample apps Ready; then the platform's memory right
  after it: VmRSS and PSS (shared pages split between processes) summed over every process the
  platform started (pids from ``platform.json`` and each part's own state file, each with its
  whole session, so PostgreSQL's backends and containerd's shims count too) plus, with real
  nodes, every process in the nodes' cgroups (the Pods' containers), in total and per kind;
  ``ratio_real_over_kwok`` divides the two; ``routes``: each app URL the command printed
  (with its Host header) and the status it answered right after;
- ``deploy_to_served`` (real nodes): one app (``ttd/skjema``) in tt02 of org ttd (one
  cluster); each deploy stores a new ``GREETING`` in dynamic config first (a new digest), and
  the clock runs from the deploy request (``POST …/deployments``) to the first answer through
  the cluster's Traefik (``Host: ttd.apps.fjord.localhost``, polled every 0.1 s) that carries the
  new greeting; also to ``state == "ready"`` in the API; median of ``--deploys`` (default 10);
- ``receiver_vs_interval`` (only with ``--polling-rounds N``): Deploy-to-Ready with the
  cluster's Flux Receiver against interval-only polling, N deploys each, interleaved so both see
  the same load (interval-only clears the Receiver URL and waits a random part of the interval
  first, so deploys land uniformly over Flux's poll cycle).

    .venv/bin/python bench/e2e.py [--deploys 10] [--interval 30s] [--polling-rounds 0]

``--interval`` is passed to the platform's control plane as ``FJORD_FLUX_INTERVAL`` (how often
Flux polls when no Receiver call comes). Each platform is taken down with ``fjord dev down``
before the next starts.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

from fjord.api.client import FjordClient
from fjord.control import states
from fjord.devcluster import binaries
from fjord.devcluster.cluster import ClusterState
from fjord.devcluster.gitea import LocalGitea
from fjord.devcluster.platform import PlatformState
from fjord.devcluster.postgres import LocalPostgres
from fjord.devcluster.processes import ProcessRecord, is_alive
from fjord.devcluster.redis import LocalRedis
from fjord.devcluster.registry import LocalRegistry

APP = "ttd/skjema"
ENVIRONMENT = "tt02"
CLUSTER = "ttd.tt02.tt02-1"
FLUX = {"source-controller", "kustomize-controller", "notification-controller"}
NODE = {"containerd", "kubelet", "kube-proxy", "traefik"}
KINDS = (
    "clusters",
    "flux",
    "real_nodes",
    "pods",
    "operators",
    "control_plane",
    "emulator",
    "databases",
    "registries",
    "gitea",
)


# ---- memory --------------------------------------------------------------------------------


def _kind(record: ProcessRecord) -> str:
    if record.name in FLUX:
        return "flux"
    return "real_nodes" if record.name in NODE else "clusters"


def platform_processes(root: Path) -> list[tuple[str, ProcessRecord]]:
    """(kind, record) for every process the platform has recorded."""
    found: list[tuple[str, ProcessRecord]] = []
    for directory in sorted((root / "clusters").glob("*")):
        cluster = ClusterState.load(directory)
        found += [(_kind(r), r) for r in (cluster.processes if cluster else [])]
    for directory in sorted((root / "registries").glob("*")):
        registry = LocalRegistry.load(directory)
        if registry is not None:
            found.append(("registries", registry.process))
    postgres = LocalPostgres.load(root / "postgres")
    if postgres is not None:
        found.append(("databases", postgres.record))
    redis = LocalRedis.load(root / "redis")
    if redis is not None:
        found.append(("databases", redis.record))
    gitea = LocalGitea.load(root / "gitea")
    if gitea is not None:
        found.append(("gitea", gitea.record))
    state = PlatformState.load(root)
    if state is not None:
        found += [("operators", r) for r in state.operators.values()]
        if state.control is not None:
            found.append(("control_plane", state.control))
        if state.emulator is not None:
            found.append(("emulator", state.emulator))
    return found


def node_cgroups(root: Path) -> set[str]:
    """The real nodes' cgroup roots (``/fjord-<cluster>``), where their Pods' processes run."""
    names = set()
    for directory in sorted((root / "clusters").glob("*")):
        cluster = ClusterState.load(directory)
        if cluster is not None and cluster.real_node is not None:
            names.add(f"/{cluster.node_layout.cgroup}/")
    return names


def _sessions() -> dict[int, list[int]]:
    """Session id → pids, over every process of the machine."""
    sessions: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        sessions.setdefault(int(fields[3]), []).append(int(entry.name))
    return sessions


def _kib(pid: int, path: str, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return 0


def _in_cgroups(pid: int, cgroups: set[str]) -> bool:
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    return any(name in text for name in cgroups)


def platform_memory(root: Path) -> dict[str, Any]:
    """RSS and PSS of every process of the platform now, in total and per kind (MiB)."""
    sessions = _sessions()
    pids: dict[int, str] = {}
    for kind, record in platform_processes(root):
        if is_alive(record):
            for pid in sessions.get(record.pid, [record.pid]):
                pids.setdefault(pid, kind)
    cgroups = node_cgroups(root)
    if cgroups:
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and _in_cgroups(int(entry.name), cgroups):
                pids.setdefault(int(entry.name), "pods")
    rss = dict.fromkeys(KINDS, 0)
    pss = dict.fromkeys(KINDS, 0)
    for pid, kind in pids.items():
        rss[kind] += _kib(pid, "status", "VmRSS:")
        pss[kind] += _kib(pid, "smaps_rollup", "Pss:")

    def mib(kib: int) -> float:
        return round(kib / 1024, 1)

    return {
        "processes": len(pids),
        "rss_mib": mib(sum(rss.values())),
        "pss_mib": mib(sum(pss.values())),
        "rss_by_kind_mib": {k: mib(v) for k, v in rss.items() if v},
        "pss_by_kind_mib": {k: mib(v) for k, v in pss.items() if v},
    }


# ---- deploy → served -----------------------------------------------------------------------


async def _first_served(url: str, host: str, greeting: str, timeout: float) -> float | None:
    """Monotonic time of the first answer through Traefik that carries ``greeting``."""
    deadline = time.monotonic() + timeout
    async with httpx2.AsyncClient(timeout=10) as http:
        while time.monotonic() < deadline:
            try:
                answer = await http.get(url, headers={"Host": host})
                if answer.status_code == 200 and answer.json().get("greeting") == greeting:
                    return time.monotonic()
            except (httpx2.HTTPError, ValueError):
                pass
            await asyncio.sleep(0.1)
    return None


async def deploy_to_served(info: dict[str, Any], deploys: int, timeout: float) -> dict[str, Any]:
    route = next(u for u in info["urls"] if u["cluster"] == CLUSTER and APP in u["url"])
    served: list[float] = []
    ready: list[float] = []
    failed: list[dict[str, Any]] = []
    async with FjordClient.remote(info["control_url"], info["token"], timeout=60.0) as api:
        for number in range(1, deploys + 1):
            greeting = f"bench deploy {number}"
            current = await api.get_config(APP)
            await api.set_config(
                APP,
                {"common": {"env": {"GREETING": greeting}}},
                f"bench/e2e.py deploy {number}",
                expected_version=current.version if current else 0,
            )
            started = time.monotonic()
            requested = await api.deploy(APP, ENVIRONMENT)

            async def settled(deployment_id: int = requested.id) -> tuple[str, float]:
                done = await api.wait_deployment(
                    deployment_id, until=states.FINAL, timeout=timeout, interval=0.1
                )
                return done.state, time.monotonic()

            (state, ready_at), served_at = await asyncio.gather(
                settled(), _first_served(route["url"], route["host"], greeting, timeout)
            )
            if state != states.READY or served_at is None:
                failed.append({"deploy": number, "state": state, "served": served_at is not None})
                continue
            served.append(round(served_at - started, 2))
            ready.append(round(ready_at - started, 2))
            print(
                f"deploy {number}/{deploys}: served {served[-1]}s, ready {ready[-1]}s",
                file=sys.stderr,
                flush=True,
            )
    report: dict[str, Any] = {
        "app": APP,
        "cluster": CLUSTER,
        "route": f"{route['host']} {route['url']}",
        "deploys": deploys,
        "failed": failed,
    }
    if served:
        report |= {
            "served_median_s": round(statistics.median(served), 2),
            "served_min_s": min(served),
            "served_max_s": max(served),
            "ready_median_s": round(statistics.median(ready), 2),
            "served_s": served,
            "ready_s": ready,
        }
    return report


# ---- Receiver vs interval-only (optional) ---------------------------------------------------


def _seconds(interval: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)(ms|s|m|h)", interval))


def _at(timestamp: str) -> float:
    """An API timestamp (UTC, maybe without offset) as epoch seconds."""
    parsed = dt.datetime.fromisoformat(timestamp)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


async def one_deploy(api: FjordClient, mode: str, number: int, timeout: float) -> dict[str, Any]:
    current = await api.get_config(APP)
    await api.set_config(
        APP,
        {"common": {"env": {"BENCH_DEPLOY": f"{mode}-{number}"}}},
        f"bench/e2e.py {mode} deploy {number}",
        expected_version=current.version if current else 0,
    )
    wall = time.time()
    started = time.monotonic()
    requested = await api.deploy(APP, ENVIRONMENT)
    settled = await api.wait_deployment(
        requested.id, until=states.FINAL, timeout=timeout, interval=0.1
    )
    latency = time.monotonic() - started
    deployment = settled.model_dump(mode="json")
    tagging = [t["at"] for t in deployment.get("timeline", []) if t["reason"] == "tagging"]
    return {
        "id": deployment["id"],
        "state": deployment["state"],
        "latency_s": round(latency, 2),
        # Request → the control plane starts moving the tag (build, push, sign, sync root).
        "publish_s": round(_at(tagging[0]) - wall, 2) if tagging else None,
        "phases": phases(deployment),
        "digest": deployment["digest"],
        "reason": deployment["reason"],
    }


def phases(deployment: dict[str, Any]) -> dict[str, float]:
    """Seconds between the deployment's timeline entries (fjord's steps and Flux's events).

    ``publish``: request → tag moved (render, push, sign, sync root); ``pull``: tag moved →
    the cluster's source-controller stored the new artifact (Receiver call or next poll);
    ``apply``: stored → applied (kustomize-controller); ``health``: applied → the Kustomization's
    health check passed and fjord recorded Ready.
    """
    first: dict[str, float] = {}
    for entry in deployment.get("timeline", []):
        key = entry["reason"]
        if key.startswith("Kustomization/Progressing"):
            key = "health" if "Health check passed" in entry["message"] else "applied"
        first.setdefault(key, _at(entry["at"]))
    marks = [
        ("publish", "requested", "tagging"),
        ("pull", "tagging", "OCIRepository/NewArtifact"),
        ("apply", "OCIRepository/NewArtifact", "applied"),
        ("health", "applied", "ready"),
    ]
    return {
        name: round(first[end] - first[start], 2)
        for name, start, end in marks
        if start in first and end in first
    }


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    ok = sorted(s["latency_s"] for s in samples if s["state"] == "ready")
    publish = [s["publish_s"] for s in samples if s["publish_s"] is not None]
    after = [
        s["latency_s"] - s["publish_s"]
        for s in samples
        if s["state"] == "ready" and s["publish_s"] is not None
    ]
    if not ok:
        return {"ready": 0, "failed": len(samples)}
    rank95 = ok[max(0, math.ceil(0.95 * len(ok)) - 1)]  # nearest rank
    return {
        "ready": len(ok),
        "failed": len(samples) - len(ok),
        "median_s": round(statistics.median(ok), 2),
        "p95_s": round(rank95, 2),
        "min_s": ok[0],
        "max_s": ok[-1],
        "mean_s": round(statistics.fmean(ok), 2),
        "publish_median_s": round(statistics.median(publish), 2) if publish else None,
        # From the tag move to Ready: Flux pulls, verifies, applies, waits; the event comes back.
        "after_publish_median_s": round(statistics.median(after), 2) if after else None,
        "phase_medians_s": {
            name: round(statistics.median(values), 2)
            for name in ("publish", "pull", "apply", "health")
            if (values := [s["phases"][name] for s in samples if name in s.get("phases", {})])
        },
        "latencies_s": [s["latency_s"] for s in samples],
    }


async def deploy_rounds(
    url: str, token: str, deploys: int, interval: str, timeout: float
) -> dict[str, Any]:
    interval_s = _seconds(interval)
    results: dict[str, list[dict[str, Any]]] = {"receiver": [], "interval_only": []}
    rng = random.Random(7)
    async with FjordClient.remote(url, token, timeout=60.0) as client:
        clusters = {c.id: c for c in await client.list_clusters()}
        receiver_url = clusters[CLUSTER].receiver_url
        if not receiver_url:
            raise RuntimeError(f"{CLUSTER} has no Receiver URL after fjord dev up")
        try:
            for number in range(1, deploys + 1):
                await client.set_receiver(CLUSTER, receiver_url)
                await asyncio.sleep(1.0)
                results["receiver"].append(await one_deploy(client, "receiver", number, timeout))
                await client.set_receiver(CLUSTER, None)
                await asyncio.sleep(rng.uniform(0.0, interval_s))
                results["interval_only"].append(
                    await one_deploy(client, "interval_only", number, timeout)
                )
                print(
                    f"round {number}/{deploys}: receiver "
                    f"{results['receiver'][-1]['latency_s']}s, interval-only "
                    f"{results['interval_only'][-1]['latency_s']}s",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            await client.set_receiver(CLUSTER, receiver_url)
    digests = [s["digest"] for mode in results.values() for s in mode]
    receiver, polling = summarise(results["receiver"]), summarise(results["interval_only"])
    report: dict[str, Any] = {
        "app": APP,
        "environment": ENVIRONMENT,
        "cluster": CLUSTER,
        "flux_interval": interval,
        "deploys_per_mode": deploys,
        "distinct_digests": len(set(digests)),
        "receiver": receiver,
        "interval_only": polling,
    }
    if receiver.get("median_s") and polling.get("median_s"):
        report["ratio_median"] = round(polling["median_s"] / receiver["median_s"], 1)
        report["ratio_p95"] = round(polling["p95_s"] / receiver["p95_s"], 1)
    failures = [
        {"mode": mode, **s} for mode, runs in results.items() for s in runs if s["state"] != "ready"
    ]
    if failures:
        report["failures"] = failures[:5]
    return report


async def routes_answer(info: dict[str, Any]) -> list[dict[str, Any]]:
    """Each URL ``fjord dev up`` printed (``app: curl -H 'Host: …' …``), and what it answered."""
    answers = []
    async with httpx2.AsyncClient(timeout=10) as http:
        for route in info.get("urls", []):
            try:
                response = await http.get(route["url"], headers={"Host": route["host"]})
                status: int | str = response.status_code
            except httpx2.HTTPError as exc:
                status = type(exc).__name__
            answers.append({"curl": route["curl"], "status": status})
    return answers


# ---- main ----------------------------------------------------------------------------------


def fjord(*args: str) -> list[str]:
    return [sys.executable, "-m", "fjord.cli", *args]


def dev_up(state_dir: Path, env: dict[str, str], *extra: str) -> tuple[dict[str, Any], Any]:
    command = fjord("dev", "up", "--state-dir", str(state_dir), "-o", "json", *extra)
    started = time.monotonic()
    up = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if up.returncode != 0:
        raise RuntimeError(f"fjord dev up {' '.join(extra)} failed:\n{up.stderr[-4000:]}")
    info = json.loads(up.stdout)
    return {
        "command": " ".join(["fjord dev up", *extra]),
        "wall_s": round(wall, 1),
        "apps_ready": sum(1 for row in info.get("apps", []) if row.get("ready")),
        "progress": [line for line in up.stderr.splitlines() if "ready in" in line][-1:],
    }, info


def dev_down(state_dir: Path) -> dict[str, Any]:
    started = time.monotonic()
    down = subprocess.run(
        fjord("dev", "down", "--state-dir", str(state_dir)),
        capture_output=True,
        text=True,
        check=False,
    )
    shutil.rmtree(state_dir, ignore_errors=True)
    return {"wall_s": round(time.monotonic() - started, 1), "rc": down.returncode}


def one_platform(mode: str, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    state_dir = Path(tempfile.mkdtemp(prefix=f"fjord-bench-e2e-{mode}-"))
    result: dict[str, Any] = {}
    try:
        result["dev_up"], info = dev_up(
            state_dir, env, *(("--kwok-only",) if mode == "kwok_only" else ())
        )
        result["memory_after_up"] = platform_memory(state_dir / "platform")
        result["routes"] = asyncio.run(routes_answer(info))
        if mode == "real":
            result["deploy_to_served"] = asyncio.run(
                deploy_to_served(info, args.deploys, args.timeout)
            )
            if args.polling_rounds:
                result["receiver_vs_interval"] = asyncio.run(
                    deploy_rounds(
                        info["control_url"],
                        info["token"],
                        args.polling_rounds,
                        args.interval,
                        args.timeout,
                    )
                )
    finally:
        result["dev_down"] = dev_down(state_dir)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploys", type=int, default=10, help="deploys → served (real nodes)")
    parser.add_argument("--interval", default="30s", help="Flux interval (FJORD_FLUX_INTERVAL)")
    parser.add_argument("--timeout", type=float, default=300.0, help="per deploy, seconds")
    parser.add_argument(
        "--polling-rounds", type=int, default=0, help="Receiver vs interval-only deploys each"
    )
    args = parser.parse_args()
    binaries.locate()  # warm cache: fail early if the binaries are not built
    env = {**os.environ, "FJORD_FLUX_INTERVAL": args.interval}
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        },
        "flux_interval": args.interval,
    }
    try:
        # kwok-only first: the real platform's first run also builds the sample images.
        for mode in ("kwok_only", "real"):
            result[mode] = one_platform(mode, args, env)
            print(f"{mode}: {result[mode]['dev_up']}", file=sys.stderr, flush=True)
        real, kwok = result["real"], result["kwok_only"]
        result["ratio_real_over_kwok"] = {
            "dev_up_wall": round(real["dev_up"]["wall_s"] / kwok["dev_up"]["wall_s"], 2),
            "rss": round(
                real["memory_after_up"]["rss_mib"] / kwok["memory_after_up"]["rss_mib"], 2
            ),
            "pss": round(
                real["memory_after_up"]["pss_mib"] / kwok["memory_after_up"]["pss_mib"], 2
            ),
        }
    finally:
        result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        result["bench_max_rss_mib"] = round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        )
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
