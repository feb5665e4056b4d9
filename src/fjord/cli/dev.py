"""``fjord dev``: the local platform (clusters, Flux, registry) for demos and tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from fjord.cli.output import (
    Output,
    OutputOption,
    emit_json,
    emit_line,
    err,
    fail,
    line,
    out,
    styled,
)
from fjord.devcluster import platform
from fjord.devcluster.cluster import LocalCluster, default_state_root
from fjord.errors import FjordError

dev_app = typer.Typer(help="Run fjord's local platform: clusters, Flux and a registry.")
cluster_app = typer.Typer(help="A local Kubernetes cluster (etcd, apiserver, controllers, kwok).")
dev_app.add_typer(cluster_app, name="cluster")

StateDir = typer.Option(
    None,
    "--state-dir",
    help="State directory (default: $FJORD_STATE_DIR or ~/.local/state/fjord).",
)


def _root(state_dir: Path | None) -> Path:
    return state_dir or default_state_root()


def _progress(started: float) -> platform.Progress:
    def say(message: str) -> None:
        err.print(line(styled(f"{time.monotonic() - started:6.1f}s", "dim"), f" {message}"))

    return say


@cluster_app.command("up")
def cluster_up(
    name: str = typer.Option("dev", help="Cluster name; several can run side by side."),
    nodes: int = typer.Option(1, min=0, help="Number of kwok fake nodes."),
    flux: bool = typer.Option(False, "--flux/--no-flux", help="Also run Flux's controllers."),
    real_node: bool = typer.Option(
        False,
        "--real-node/--no-real-node",
        help="Also run a real node (containerd, CNI bridge, kubelet) whose Pods really run; "
        "needs root. The fake nodes are then tainted so Pods land on the real one.",
    ),
    kube_proxy: bool = typer.Option(
        True, "--kube-proxy/--no-kube-proxy", help="With --real-node: run kube-proxy too."
    ),
    state_dir: Path | None = StateDir,
) -> None:
    """Start a local cluster and print its kubeconfig."""
    cluster = LocalCluster(_root(state_dir) / "clusters" / name, name)
    try:
        state = cluster.up(
            nodes=nodes,
            flux=flux,
            real_node=real_node,
            kube_proxy=kube_proxy,
            progress=_progress(time.monotonic()),
        )
    except FjordError as exc:
        raise fail(exc) from exc
    emit_line(f"export KUBECONFIG={state.kubeconfig}")


@cluster_app.command("down")
def cluster_down(
    name: str = typer.Option("dev", help="Cluster name."),
    state_dir: Path | None = StateDir,
) -> None:
    """Stop every process of a cluster and remove its state (also after a crash)."""
    existed = LocalCluster(_root(state_dir) / "clusters" / name, name).down()
    err.print(f"cluster {name} {'removed' if existed else 'was not running'}")


@cluster_app.command("status")
def cluster_status(
    name: str = typer.Option("dev", help="Cluster name."),
    state_dir: Path | None = StateDir,
    output: Output = OutputOption,
) -> None:
    """Show whether each component runs; exit 1 if the cluster is not ready."""
    status = LocalCluster(_root(state_dir) / "clusters" / name, name).status()
    if output is Output.json:
        emit_json(status)
    else:
        _print_cluster(status)
    if not status.get("ready"):
        raise typer.Exit(code=1)


def _print_cluster(status: dict[str, Any]) -> None:
    table = Table(title=f"cluster {status['name']}")
    table.add_column("component")
    table.add_column("state")
    for component, alive in status["components"].items():
        table.add_row(component, styled("running", "green") if alive else styled("exited", "red"))
    out.print(table)
    if status.get("kubeconfig"):
        out.print(f"kubeconfig: {status['kubeconfig']}")


@dev_app.command("up")
def dev_up(
    state_dir: Path | None = StateDir,
    output: Output = OutputOption,
    kwok_only: bool = typer.Option(
        False,
        "--kwok-only",
        help="No real nodes: Pods are simulated by kwok (faster, less memory, no root needed; "
        "the apps do not really run).",
    ),
    small: bool = typer.Option(
        False,
        "--small",
        help="One tt02 cluster per org and no production clusters (half the clusters: less "
        "memory, a faster start); the same sample apps.",
    ),
) -> None:
    """Bring up the local platform and print where everything is."""
    try:
        info = platform.up(
            _root(state_dir) / "platform",
            platform.SMALL if small else platform.DEMO,
            progress=_progress(time.monotonic()),
            real_nodes=not kwok_only,
        )
    except FjordError as exc:
        raise fail(exc) from exc
    _print_platform(info, output)


@dev_app.command("down")
def dev_down(state_dir: Path | None = StateDir) -> None:
    """Stop everything `fjord dev up` started and remove its state."""
    removed = platform.down(_root(state_dir) / "platform")
    err.print("removed: " + (", ".join(removed) if removed else "nothing was running"))


@dev_app.command("status")
def dev_status(state_dir: Path | None = StateDir, output: Output = OutputOption) -> None:
    """Where everything of the local platform is, and whether it runs."""
    info = platform.status(_root(state_dir) / "platform")
    _print_platform(info, output)
    if not info.get("running"):
        raise typer.Exit(code=1)


def _print_platform(info: dict[str, Any], output: Output) -> None:
    if output is Output.json:
        emit_json(info)
        return
    table = Table(title="fjord local platform")
    table.add_column("part")
    table.add_column("where")
    table.add_column("state")
    for part in info.get("parts", []):
        state = styled("running", "green") if part["running"] else styled("down", "red")
        table.add_row(part["name"], part["where"], state)
    out.print(table)
    if info.get("apps"):
        apps = Table(title="apps × environments × clusters")
        for column in ("app", "environment", "cluster", "state", "revision"):
            apps.add_column(column)
        for row in info["apps"]:
            ready = row["ready"]
            state = (
                styled("Ready", "green")
                if ready
                else (styled("failed", "red") if ready is False else line("…"))
            )
            apps.add_row(
                row["app"], row["environment"], row["cluster"], state, row["revision"] or "-"
            )
        out.print(apps)
    for hint in info.get("hints", []):
        emit_line(hint)
