"""The local platform behind ``fjord dev up``: a cluster with Flux and a loopback OCI registry.

Every part keeps its state under one root directory, so ``down`` and ``status`` find them from any
later process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fjord.devcluster.cluster import LocalCluster
from fjord.devcluster.registry import LocalRegistry

Progress = Callable[[str], None]

CLUSTER_NAME = "dev"


def _cluster(root: Path) -> LocalCluster:
    return LocalCluster(root / "clusters" / CLUSTER_NAME, CLUSTER_NAME)


def _registry_dir(root: Path) -> Path:
    return root / "registry"


def _registry(root: Path) -> LocalRegistry | None:
    return LocalRegistry.load(_registry_dir(root))


def up(root: Path, *, progress: Progress | None = None) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    registry = _registry(root)
    if registry is None or not registry.running():
        say("starting the OCI registry (docker-registry)")
        registry = LocalRegistry.start(_registry_dir(root))
    try:
        _cluster(root).up(nodes=1, flux=True, progress=say)
    except BaseException:
        registry.stop()
        raise
    return status(root)


def down(root: Path) -> list[str]:
    removed = []
    if _cluster(root).down():
        removed.append(f"cluster {CLUSTER_NAME}")
    registry = _registry(root)
    if registry is not None:
        registry.stop()
        removed.append("registry")
    return removed


def status(root: Path) -> dict[str, Any]:
    cluster = _cluster(root).status()
    registry = _registry(root)
    registry_running = registry is not None and registry.running()
    parts = [
        {
            "name": f"cluster {CLUSTER_NAME} (kube-apiserver)",
            "where": cluster.get("server", "-"),
            "running": bool(cluster.get("ready")),
        },
    ]
    if cluster.get("flux"):
        ports = cluster["ports"]
        parts += [
            {
                "name": "flux source-controller storage",
                "where": f"http://127.0.0.1:{ports['source-storage']}",
                "running": bool(cluster["components"].get("source-controller")),
            },
            {
                "name": "flux notification-controller receiver",
                "where": f"http://127.0.0.1:{ports['notification-receiver']}",
                "running": bool(cluster["components"].get("notification-controller")),
            },
        ]
    parts.append(
        {
            "name": "OCI registry",
            "where": registry.url if registry is not None else "-",
            "running": registry_running,
        }
    )
    hints = []
    if cluster.get("kubeconfig"):
        hints.append(f"export KUBECONFIG={cluster['kubeconfig']}")
        hints.append("stop everything with: make down  (or: .venv/bin/fjord dev down)")
    return {
        "running": all(p["running"] for p in parts),
        "parts": parts,
        "cluster": cluster,
        "registry": registry.url if registry is not None else None,
        "hints": hints,
    }
