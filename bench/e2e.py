"""End-to-end benchmark: ``fjord dev up`` and Deploy-to-Ready, Receiver versus interval polling.

Prints one JSON document:

- ``dev_up``: wall time of the real command ``fjord dev up`` (a subprocess, fresh state
  directory, binaries already built) until it exits 0 with the sample apps Ready;
- ``memory``: resident memory of the whole platform, sampled every second from the moment the
  command starts until the benchmark ends: the sum of VmRSS over every process the platform
  started (pids from ``platform.json`` and each part's own state file — clusters'
  ``state.json``, ``registry.json``, ``postgres.json``, ``redis.json`` — with each process's
  whole session, so PostgreSQL's backends count too), in total and per component kind; PSS
  (shared pages split between processes) every fifth sample as a cross-check;
- ``deploy_to_ready``: one app (``ttd/skjema``) in tt02 of org ttd (one cluster); each deploy
  changes a dynamic-config value first, so every release is a new digest; latency is from the
  deploy request (``POST …/deployments``) to ``state == "ready"`` in the API (polled every
  0.1 s). Two modes, interleaved (one deploy of each per round) so both see the same machine
  load: ``receiver`` (the default: fjord calls the cluster's Flux Receiver after publishing)
  and ``interval_only`` (the cluster's Receiver URL unset with ``PUT
  /api/clusters/{id}/receiver {"url": null}``; Flux finds the new tag on its next poll).
  Before each interval-only deploy the benchmark waits a random part of the interval, so the
  deploys land at uniformly spread points of Flux's poll cycle.

    .venv/bin/python bench/e2e.py [--deploys 20] [--interval 30s]

``--interval`` is passed to the platform's control plane as ``FJORD_FLUX_INTERVAL`` (written
into every OCIRepository/Kustomization of the sync roots and bootstrap manifests; the default
``10m`` would make interval-only deploys take minutes). The benchmark brings up its own platform
in a temporary state directory and takes it down with ``fjord dev down`` at the end.
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
import threading
import time
from pathlib import Path
from typing import Any

from fjord.api.client import FjordClient
from fjord.control import states
from fjord.devcluster import binaries
from fjord.devcluster.cluster import ClusterState
from fjord.devcluster.platform import PlatformState
from fjord.devcluster.postgres import LocalPostgres
from fjord.devcluster.processes import ProcessRecord, is_alive
from fjord.devcluster.redis import LocalRedis
from fjord.devcluster.registry import LocalRegistry

APP = "ttd/skjema"
ENVIRONMENT = "tt02"
CLUSTER = "ttd.tt02.tt02-1"
FLUX = {"source-controller", "kustomize-controller", "notification-controller"}
KINDS = (
    "clusters",
    "flux",
    "operators",
    "control_plane",
    "emulator",
    "databases",
    "registries",
)


# ---- memory --------------------------------------------------------------------------------


def platform_processes(root: Path) -> list[tuple[str, ProcessRecord]]:
    """(kind, record) for every process the platform has recorded so far."""
    found: list[tuple[str, ProcessRecord]] = []
    for directory in sorted((root / "clusters").glob("*")):
        cluster = ClusterState.load(directory)
        for record in cluster.processes if cluster else []:
            found.append(("flux" if record.name in FLUX else "clusters", record))
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
    state = PlatformState.load(root)
    if state is not None:
        found += [("operators", r) for r in state.operators.values()]
        if state.control is not None:
            found.append(("control_plane", state.control))
        if state.emulator is not None:
            found.append(("emulator", state.emulator))
    return found


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


class MemorySampler(threading.Thread):
    """Samples the platform's memory every second; keeps the peak and a few phase markers."""

    def __init__(self, root: Path, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.stop_event = threading.Event()
        self.phase = "dev_up"
        self.samples = 0
        self.peak_total = 0
        self.peak_phase = ""
        self.at_peak: dict[str, int] = {}
        self.peak_by_kind: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.peak_pss = 0
        self.pss_unreadable = 0
        self.processes_at_peak = 0
        self.last: dict[str, int] = {}
        self.phase_peaks: dict[str, int] = {}
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)

    def sample(self) -> None:
        with self.lock:
            self._sample()

    def _sample(self) -> None:
        records = platform_processes(self.root)
        if not records:
            return
        sessions = _sessions()
        by_kind = dict.fromkeys(KINDS, 0)
        with_pss = self.samples % 5 == 0
        pss_total, count = 0, 0
        seen: set[int] = set()
        for kind, record in records:
            if not is_alive(record):
                continue
            for pid in sessions.get(record.pid, [record.pid]):
                if pid in seen:
                    continue
                seen.add(pid)
                count += 1
                by_kind[kind] += _kib(pid, "status", "VmRSS:")
                if with_pss:
                    pss = _kib(pid, "smaps_rollup", "Pss:")
                    self.pss_unreadable += pss == 0
                    pss_total += pss
        total = sum(by_kind.values())
        self.samples += 1
        self.last = by_kind
        self.phase_peaks[self.phase] = max(self.phase_peaks.get(self.phase, 0), total)
        for kind, kib in by_kind.items():
            self.peak_by_kind[kind] = max(self.peak_by_kind[kind], kib)
        if total > self.peak_total:
            self.peak_total, self.at_peak = total, by_kind
            self.peak_phase, self.processes_at_peak = self.phase, count
        self.peak_pss = max(self.peak_pss, pss_total)

    def report(self) -> dict[str, Any]:
        def mib(kib: int) -> float:
            return round(kib / 1024, 1)

        return {
            "peak_rss_mib": mib(self.peak_total),
            "peak_during": self.peak_phase,
            "processes_at_peak": self.processes_at_peak,
            "at_peak_by_kind_mib": {k: mib(v) for k, v in self.at_peak.items()},
            "peak_by_kind_mib": {k: mib(v) for k, v in self.peak_by_kind.items()},
            "peak_rss_by_phase_mib": {k: mib(v) for k, v in self.phase_peaks.items()},
            "peak_pss_mib": mib(self.peak_pss),
            "samples": self.samples,
        }


# ---- deploys -------------------------------------------------------------------------------


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


# ---- main ----------------------------------------------------------------------------------


def fjord(*args: str) -> list[str]:
    return [sys.executable, "-m", "fjord.cli", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploys", type=int, default=20, help="deploys per mode")
    parser.add_argument("--interval", default="30s", help="Flux interval (FJORD_FLUX_INTERVAL)")
    parser.add_argument("--timeout", type=float, default=300.0, help="per deploy, seconds")
    args = parser.parse_args()
    binaries.locate()  # warm cache: fail early if the binaries are not built
    state_dir = Path(tempfile.mkdtemp(prefix="fjord-bench-e2e-"))
    root = state_dir / "platform"
    env = {**os.environ, "FJORD_FLUX_INTERVAL": args.interval}
    sampler = MemorySampler(root)
    load_before = os.getloadavg()
    sampler.start()
    command = fjord("dev", "up", "--state-dir", str(state_dir), "-o", "json")
    result: dict[str, Any] = {
        "command": "FJORD_FLUX_INTERVAL="
        + args.interval
        + " fjord dev up --state-dir <tmp> -o json",
        "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before]},
    }
    try:
        started = time.monotonic()
        up = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
        if up.returncode != 0:
            raise RuntimeError(f"fjord dev up failed ({up.returncode}):\n{up.stderr[-4000:]}")
        info = json.loads(up.stdout)
        sampler.sample()
        steady = dict(sampler.last)
        result["dev_up"] = {
            "wall_s": round(wall, 1),
            "cli_max_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
            "apps_ready": sum(1 for row in info.get("apps", []) if row.get("ready")),
            "processes": len(platform_processes(root)),
            "progress": [line for line in up.stderr.splitlines() if "ready in" in line][-1:],
        }
        result["memory_after_up_mib"] = {
            "total": round(sum(steady.values()) / 1024, 1),
            **{k: round(v / 1024, 1) for k, v in steady.items()},
        }
        sampler.phase = "deploys"
        result["deploy_to_ready"] = asyncio.run(
            deploy_rounds(
                info["control_url"], info["token"], args.deploys, args.interval, args.timeout
            )
        )
    finally:
        sampler.stop_event.set()
        sampler.join()
        result["memory"] = sampler.report()
        started = time.monotonic()
        down = subprocess.run(
            fjord("dev", "down", "--state-dir", str(state_dir)),
            capture_output=True,
            text=True,
            check=False,
        )
        result["dev_down"] = {"wall_s": round(time.monotonic() - started, 1), "rc": down.returncode}
        result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        shutil.rmtree(state_dir, ignore_errors=True)
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
