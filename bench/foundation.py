"""Foundation benchmark: binary build, cluster start, memory and Flux pull-to-apply latency.

Prints one JSON document. Everything is measured in this one run so the numbers compare side by
side (ratios matter more than absolute times on a noisy 2-core machine).

    .venv/bin/python bench/foundation.py [--runs 5] [--cold]

``--cold`` also builds every binary from scratch into throw-away Go caches (15-30 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from fjord.artifact.oci import build_artifact
from fjord.devcluster import binaries
from fjord.devcluster.cluster import LocalCluster
from fjord.devcluster.registry import LocalRegistry
from fjord.kube import Kube, is_true
from fjord.stores.registry import RegistryStore

REPO = Path(__file__).resolve().parents[1]


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": round(statistics.median(ordered), 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
        "runs": len(ordered),
    }


def du(path: Path) -> int:
    if not path.exists():
        return 0
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def go_env(name: str) -> Path:
    out = subprocess.run(["go", "env", name], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def warm_build_check(runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "fjord.devcluster.binaries", "build"],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        )
        samples.append(time.perf_counter() - started)
    return summary(samples)


def cold_build() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fjord-cold-") as tmp:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO / "src"),
            "GOMODCACHE": f"{tmp}/mod",
            "GOCACHE": f"{tmp}/build",
            "FJORD_CACHE_DIR": f"{tmp}/fjord",
        }
        env.pop("FJORD_BIN_DIR", None)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "fjord.devcluster.binaries", "build"], check=True, env=env
        )
        seconds = time.perf_counter() - started
        return {
            "seconds": round(seconds, 1),
            "module_cache_bytes": du(Path(tmp) / "mod"),
            "build_cache_bytes": du(Path(tmp) / "build"),
            "binaries_bytes": du(Path(tmp) / "fjord"),
        }


def cluster_starts(root: Path, runs: int, *, flux: bool) -> dict[str, Any]:
    samples, rss = [], []
    for run in range(runs):
        local = LocalCluster(root / f"{'flux' if flux else 'plain'}-{run}")
        started = time.perf_counter()
        state = local.up(nodes=1, flux=flux)
        samples.append(time.perf_counter() - started)
        time.sleep(2)  # let the components settle before reading memory
        rss.append(state.memory_rss_bytes())
        local.down()
    return {
        "start_to_ready_node_seconds": summary(samples),
        "rss_bytes_median": int(statistics.median(rss)),
    }


async def flux_pull_to_apply(root: Path, runs: int) -> dict[str, Any]:
    local = LocalCluster(root / "flux-latency")
    state = local.up(nodes=1, flux=True)
    registry = LocalRegistry.start(root / "registry")
    samples = []
    try:
        async with (
            await Kube.connect(state.kubeconfig) as kube,
            RegistryStore(registry.url) as store,
        ):
            ns = "bench"
            await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            for run in range(runs):
                cm = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "cm", "namespace": ns},
                    "data": {"run": str(run)},
                }
                artifact = build_artifact(
                    {"deploy/cm.yaml": yaml.safe_dump(cm).encode()},
                    source="bench",
                    revision=f"run-{run}",
                )
                started = time.perf_counter()
                digest = await store.push("bench/app", artifact, tag="latest")
                if run == 0:
                    await kube.apply(
                        {
                            "apiVersion": "source.toolkit.fluxcd.io/v1",
                            "kind": "OCIRepository",
                            "metadata": {"name": "app", "namespace": ns},
                            "spec": {
                                "url": f"oci://{registry.host}/bench/app",
                                "ref": {"tag": "latest"},
                                "interval": "10m",
                                "insecure": True,
                            },
                        }
                    )
                    await kube.apply(
                        {
                            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                            "kind": "Kustomization",
                            "metadata": {"name": "app", "namespace": ns},
                            "spec": {
                                "sourceRef": {"kind": "OCIRepository", "name": "app"},
                                "path": "./deploy",
                                "prune": True,
                                "interval": "10m",
                            },
                        }
                    )
                else:
                    now = dt.datetime.now(dt.UTC).isoformat()
                    await kube.patch(
                        "source.toolkit.fluxcd.io/v1",
                        "OCIRepository",
                        "app",
                        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": now}}},
                        ns,
                    )
                await kube.wait_for(
                    "kustomize.toolkit.fluxcd.io/v1",
                    "Kustomization",
                    "app",
                    ns,
                    until=lambda o, d=digest: (
                        (o or {}).get("status", {}).get("lastAppliedRevision") == f"latest@{d}"
                        and is_true(o, "Ready")
                    ),
                )
                samples.append(time.perf_counter() - started)
    finally:
        registry.stop()
        local.down()
    return {"push_to_applied_seconds": summary(samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="also time a cold build (slow)")
    args = parser.parse_args()

    bin_dir = binaries.build()
    manifest = json.loads((bin_dir / "manifest.json").read_text())
    result: dict[str, Any] = {
        "benchmark": "foundation",
        "machine": {"cpus": os.cpu_count()},
        "versions": {k: manifest[k] for k in ("kubernetes", "etcd", "kwok", "flux", "go")},
        "build": {
            "recorded_build_seconds": manifest.get("build_seconds"),
            "warm_check_seconds": warm_build_check(args.runs),
            "binaries_bytes": du(bin_dir),
            "go_module_cache_bytes": du(go_env("GOMODCACHE")),
            "go_build_cache_bytes": du(go_env("GOCACHE")),
        },
    }
    if args.cold:
        result["build"]["cold"] = cold_build()
    with tempfile.TemporaryDirectory(prefix="fjord-bench-") as tmp:
        root = Path(tmp)
        plain = cluster_starts(root, args.runs, flux=False)
        with_flux = cluster_starts(root, args.runs, flux=True)
        result["cluster"] = {
            "without_flux": plain,
            "with_flux": with_flux,
            "flux_start_ratio": round(
                with_flux["start_to_ready_node_seconds"]["median"]
                / plain["start_to_ready_node_seconds"]["median"],
                2,
            ),
        }
        result["flux"] = asyncio.run(flux_pull_to_apply(root, args.runs))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
