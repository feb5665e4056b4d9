"""``fjord cluster``: list clusters, set their Receiver URL, bootstrap them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fjord.cli.client import ServerOption, TokenOption, run
from fjord.cli.output import Output, OutputOption, emit_json, err, out
from fjord.control.views import ClusterView
from fjord.render.yamlout import dump_all

cluster_app = typer.Typer(help="The clusters of each org and environment.", no_args_is_help=True)


@cluster_app.command("list")
def list_clusters(
    org: Annotated[str | None, typer.Option(help="only this org")] = None,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """List clusters: bootstrapped or not, Receiver URL, and what their root sync reports."""
    rows = run(server, token, lambda api: api.list_clusters(org))
    if output == Output.json:
        emit_json(rows)
        return
    table = Table("cluster", "org", "environment", "bootstrapped", "receiver", "sync")
    for row in rows:
        table.add_row(
            row.id,
            row.org,
            row.environment,
            str(row.bootstrapped),
            row.receiver_url or "",
            _sync(row),
        )
    out.print(table)


def _sync(row: ClusterView) -> str:
    if row.sync_revision is None and row.sync_ready is None:
        return "no report yet"
    state = {True: "ready", False: "failed", None: "progressing"}[row.sync_ready]
    text = f"{state} {row.sync_revision or ''}".strip()
    return text if row.sync_ready is not False else f"{text}: {row.sync_message}"


@cluster_app.command("receiver")
def receiver(
    cluster_id: Annotated[str, typer.Argument(help="org.env.name")],
    url: Annotated[str | None, typer.Argument(help="Receiver base URL; omit to clear")] = None,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
) -> None:
    """Set where fjord reaches the cluster's Flux Receiver (pull at once after a deploy)."""
    run(server, token, lambda api: api.set_receiver(cluster_id, url))
    err.print(f"{cluster_id}: receiver {url or 'cleared'}")


async def _apply(kubeconfig: Path, objects: list[dict[str, Any]]) -> None:
    from fjord.kube import Kube  # only this path needs the Kubernetes client

    async with await Kube.connect(kubeconfig) as kube:
        for obj in objects:
            await kube.apply(obj, field_manager="fjord-bootstrap", force=True)
            err.print(f"applied {obj['kind']} {obj['metadata']['name']}")


@cluster_app.command("bootstrap")
def bootstrap(
    org: Annotated[str, typer.Option(help="the cluster's org")],
    env: Annotated[str, typer.Option("--env", help="the cluster's environment")],
    cluster: Annotated[str, typer.Option(help="the cluster's name")],
    kubeconfig: Annotated[
        Path | None, typer.Option(help="apply to this cluster instead of printing YAML")
    ] = None,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """The one-time manifests (with a new HMAC token): print them, or apply with --kubeconfig."""
    objects = run(server, token, lambda api: api.bootstrap(org, env, cluster))
    if kubeconfig is not None:
        asyncio.run(_apply(kubeconfig, objects))
        return
    if output == Output.json:
        emit_json(objects)
    else:
        print(dump_all(objects).decode(), end="")
