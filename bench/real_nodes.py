"""Real nodes against kwok-only, in one run: ``fjord dev up`` time and memory, deploy → served.

Prints one JSON document:

- ``real`` and ``kwok_only``: wall time of ``fjord dev up`` (a subprocess, fresh state
  directory, binaries and the sample apps' base image already built: "warm"), and the
  platform's resident memory right after it (VmRSS and PSS summed over every process whose
  command line or environment names the state directory, plus every process in a real node's
  cgroups: containers and their shims);
- ``deploy_to_served`` (real nodes only): one app (``ttd/skjema``) in tt02; each deploy sets a
  new ``GREETING`` through dynamic config first (a new digest), and the latency is from the
  deploy request to the first answer through Traefik that carries the new greeting; median of
  ``--deploys`` (default 10).

    .venv/bin/python bench/real_nodes.py [--deploys 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

APP, CLUSTER = "ttd/skjema", "ttd.tt02.tt02-1"


def fjord(*args: str) -> list[str]:
    return [sys.executable, "-m", "fjord.cli", *args]


def _status_kib(pid: str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def _pss_kib(pid: str) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def platform_memory(state_dir: Path) -> dict[str, float]:
    marker = str(state_dir).encode()
    rss = pss = count = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            mine = (
                marker in (proc / "cmdline").read_bytes()
                or marker in (proc / "environ").read_bytes()
            )
            mine = mine or "/fjord-" in (proc / "cgroup").read_text()
            if not mine:
                continue
            rss += _status_kib(proc.name, "VmRSS:")
            pss += _pss_kib(proc.name)
            count += 1
        except OSError:
            continue
    return {"processes": count, "rss_mib": round(rss / 1024, 1), "pss_mib": round(pss / 1024, 1)}


def dev_up(state_dir: Path, *extra: str) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    up = subprocess.run(
        fjord("dev", "up", "--state-dir", str(state_dir), "-o", "json", *extra),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - started
    if up.returncode != 0:
        raise RuntimeError(f"fjord dev up {' '.join(extra)} failed:\n{up.stderr[-3000:]}")
    return wall, json.loads(up.stdout)


def dev_down(state_dir: Path) -> None:
    subprocess.run(fjord("dev", "down", "--state-dir", str(state_dir)), check=False)
    shutil.rmtree(state_dir, ignore_errors=True)


async def deploy_to_served(info: dict[str, Any], deploys: int) -> dict[str, Any]:
    route = next(u for u in info["urls"] if u["cluster"] == CLUSTER and "skjema" in u["url"])
    latencies = []
    async with (
        httpx2.AsyncClient(
            base_url=info["control_url"],
            headers={"Authorization": f"Bearer {info['token']}"},
            timeout=60,
        ) as api,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        for number in range(deploys):
            greeting = f"bench {number} {time.time_ns()}"
            body = {"values": {"common": {"env": {"GREETING": greeting}}}, "reason": "bench"}
            (await api.put(f"/api/apps/{APP}/config", json=body)).raise_for_status()
            started = time.monotonic()
            created = await api.post(f"/api/apps/{APP}/deployments", json={"environment": "tt02"})
            created.raise_for_status()
            while time.monotonic() - started < 300:
                try:
                    answer = await http.get(route["url"], headers={"Host": route["host"]})
                    if answer.status_code == 200 and answer.json().get("greeting") == greeting:
                        break
                except httpx2.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            latencies.append(round(time.monotonic() - started, 2))
            print(f"deploy {number + 1}/{deploys}: {latencies[-1]}s", file=sys.stderr)
    return {
        "deploys": deploys,
        "median_s": round(statistics.median(latencies), 2),
        "min_s": min(latencies),
        "max_s": max(latencies),
        "latencies_s": latencies,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploys", type=int, default=10)
    args = parser.parse_args()
    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}}
    for mode, extra in (("real", ()), ("kwok_only", ("--kwok-only",))):
        state_dir = Path(tempfile.mkdtemp(prefix=f"fjord-bench-{mode}-"))
        try:
            wall, info = dev_up(state_dir, *extra)
            result[mode] = {"dev_up_s": round(wall, 1), "memory": platform_memory(state_dir)}
            if mode == "real":
                result["deploy_to_served"] = asyncio.run(deploy_to_served(info, args.deploys))
        finally:
            dev_down(state_dir)
    if "real" in result and "kwok_only" in result:
        real, kwok = result["real"], result["kwok_only"]
        result["ratio_real_over_kwok"] = {
            "dev_up": round(real["dev_up_s"] / kwok["dev_up_s"], 2),
            "rss": round(real["memory"]["rss_mib"] / kwok["memory"]["rss_mib"], 2),
            "pss": round(real["memory"]["pss_mib"] / kwok["memory"]["pss_mib"], 2),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
