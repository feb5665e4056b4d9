"""``fjord deploy|status|history|promote|approve|rollback|undeploy``.

Changing commands follow the deployment by default: one line per cluster, updated live on
stderr, and every Flux event as it arrives. Exit 0 only when every cluster is ready; 1 with
Flux's own error when it failed; 8 when it waits for approval; 6 when ``--timeout`` passed first.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from fjord.api.client import SETTLED, FjordClient
from fjord.cli.client import EXIT_FAILED, EXIT_INVALID, EXIT_TIMEOUT, ServerOption, TokenOption, run
from fjord.cli.output import Output, OutputOption, emit_json, err, fail, line, out, styled
from fjord.control import states
from fjord.control.views import AppInfraView, AppStatusView, CellView, DeploymentView

EXIT_AWAITING_APPROVAL = 8

WaitOption = typer.Option(True, "--wait/--no-wait", help="follow until every cluster is ready")
TimeoutOption = typer.Option(900.0, "--timeout", help="stop following after this many seconds")
KeyOption = typer.Option(
    None, "--idempotency-key", help="retrying with the same key never deploys twice"
)


def _short(digest: str | None) -> str:
    return (digest or "–").removeprefix("sha256:")[:12]


def _cluster_table(deployment: DeploymentView) -> Table:
    wave = ""
    if deployment.rollout is not None:
        rollout = deployment.rollout
        current = rollout.waves[rollout.wave - 1] if rollout.waves else None
        wave = f", wave {rollout.wave} of {len(rollout.waves)}" + (
            f" ({current.state})" if current else ""
        )
    table = Table(
        title=f"#{deployment.id} {deployment.kind} {deployment.org}/{deployment.app} "
        f"→ {deployment.environment}: {deployment.state}{wave}"
    )
    table.add_column("cluster")
    table.add_column("state")
    table.add_column("revision")
    table.add_column("message", overflow="fold")
    for cluster in deployment.clusters:
        colour = {"ready": "green", "failed": "red"}.get(cluster.state, "yellow")
        table.add_row(
            cluster.cluster,
            styled(cluster.state, colour),
            cluster.revision or "",
            cluster.message or "",
        )
    return table


async def _follow(api: FjordClient, deployment: DeploymentView, timeout: float) -> DeploymentView:
    deadline = time.monotonic() + timeout
    seen = 0
    with Live(_cluster_table(deployment), console=err, transient=False) as live:
        while True:
            for entry in deployment.timeline[seen:]:
                where = f"{entry.cluster}: " if entry.cluster else ""
                live.console.print(
                    line(
                        styled(f"{entry.at:%H:%M:%S}", "dim"),
                        f" {where}{entry.reason}: {entry.message}",
                    )
                )
            seen = len(deployment.timeline)
            live.update(_cluster_table(deployment))
            if deployment.state in SETTLED:
                return deployment
            if time.monotonic() > deadline:
                return deployment
            await asyncio.sleep(1.0)
            deployment = await api.get_deployment(deployment.id)


def _finish(deployment: DeploymentView, output: Output, waited: bool) -> None:
    if output == Output.json:
        emit_json(deployment)
    state = deployment.state
    if state == states.READY:
        err.print(
            line(styled("ready", "green"), f": every cluster runs {_short(deployment.digest)}")
        )
        return
    if state == states.AWAITING_APPROVAL:
        err.print(
            f"deployment {deployment.id} awaits approval by an app-admin: "
            f"fjord approve {deployment.id}"
        )
        if waited:
            raise typer.Exit(EXIT_AWAITING_APPROVAL)
        return
    if state == states.HALTED:
        raise fail(
            f"deployment {deployment.id} halted: {deployment.reason} (fjord rollout"
            f" resume|abort|rollback {deployment.id})",
            EXIT_FAILED,
        )
    if state in (states.FAILED, states.SUPERSEDED, states.ABORTED, states.ROLLED_BACK):
        raise fail(f"deployment {deployment.id} {state}: {deployment.reason}", EXIT_FAILED)
    if waited:
        raise fail(f"deployment {deployment.id} is still {state} (stopped following)", EXIT_TIMEOUT)
    err.print(f"deployment {deployment.id}: {state}")


def _change(
    server: str | None,
    token: str | None,
    start: Callable[[FjordClient], Awaitable[DeploymentView]],
    *,
    wait: bool,
    timeout: float,
    output: Output,
) -> None:
    """Start a change (one client call; the server queues it), then follow the deployment."""

    async def work(api: FjordClient) -> DeploymentView:
        deployment = await start(api)
        if wait and deployment.state not in states.FINAL:
            deployment = await _follow(api, deployment, timeout)
        return deployment

    _finish(run(server, token, work), output, wait)


def _key(given: str | None) -> str:
    return given or uuid.uuid4().hex


def deploy(
    name: Annotated[str, typer.Argument(help="org/app")],
    env: Annotated[str, typer.Option("--env", "-e", help="environment")],
    ref: Annotated[
        str | None,
        typer.Option(
            "--ref", help="build from this tag, branch or commit (default: the default branch)"
        ),
    ] = None,
    release: Annotated[
        int | None, typer.Option("--release", help="or deploy this release (its number)")
    ] = None,
    image: Annotated[
        str | None, typer.Option("--image", help="with --ref: the image to run (e.g. from CI)")
    ] = None,
    idempotency_key: str | None = KeyOption,
    wait: bool = WaitOption,
    timeout: float = TimeoutOption,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Build, publish and deploy an app to an environment; follow every cluster."""
    if ref is not None and release is not None:
        raise fail("deploy either --ref or --release, not both", EXIT_INVALID)
    key = _key(idempotency_key)
    _change(
        server,
        token,
        lambda api: api.deploy(
            name, env, ref=ref, release=release, image=image, idempotency_key=key
        ),
        wait=wait,
        timeout=timeout,
        output=output,
    )


def rotate(
    name: Annotated[str, typer.Argument(help="org/app")],
    env: Annotated[str, typer.Option("--env", "-e", help="environment")],
    reason: Annotated[
        str, typer.Option(help="why (kept with the config version and in the audit log)")
    ] = "rotate credentials",
    idempotency_key: str | None = KeyOption,
    wait: bool = WaitOption,
    timeout: float = TimeoutOption,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """New PostgreSQL and Redis credentials for an app in one environment, by a deploy.

    The server raises ``credentialsRotation`` for the environment in the app's dynamic config
    and queues a deploy pinned to that version, in one step: the release mounts new Secrets, and
    the old ones stay while a ReplicaSet uses them.
    """

    async def rotate_on_the_server(api: FjordClient) -> DeploymentView:
        # One request: the server raises the counter and queues the deploy pinned to it.
        return await api.rotate(
            name, env, reason=reason, idempotency_key=idempotency_key or uuid.uuid4().hex
        )

    _change(server, token, rotate_on_the_server, wait=wait, timeout=timeout, output=output)


def promote(
    name: Annotated[str, typer.Argument(help="org/app")],
    to: Annotated[str, typer.Option("--to", help="target environment")],
    idempotency_key: str | None = KeyOption,
    wait: bool = WaitOption,
    timeout: float = TimeoutOption,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Promote the release ready in the previous environment (same digest) to ``--to``."""
    key = _key(idempotency_key)
    _change(
        server,
        token,
        lambda api: api.promote(name, to, idempotency_key=key),
        wait=wait,
        timeout=timeout,
        output=output,
    )


def approve(
    deployment_id: Annotated[int, typer.Argument(help="the deployment awaiting approval")],
    wait: bool = WaitOption,
    timeout: float = TimeoutOption,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Approve a deployment (app-admin), then follow it."""
    _change(
        server,
        token,
        lambda api: api.approve(deployment_id),
        wait=wait,
        timeout=timeout,
        output=output,
    )


def rollback(
    name: Annotated[str, typer.Argument(help="org/app")],
    env: Annotated[str, typer.Option("--env", "-e", help="environment")],
    to: Annotated[
        str | None, typer.Option(help="release digest (prefix); default: the previous one")
    ] = None,
    idempotency_key: str | None = KeyOption,
    wait: bool = WaitOption,
    timeout: float = TimeoutOption,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Point an environment at an earlier release (recorded as a deployment)."""
    key = _key(idempotency_key)
    _change(
        server,
        token,
        lambda api: api.rollback(name, env, to=to, idempotency_key=key),
        wait=wait,
        timeout=timeout,
        output=output,
    )


def undeploy(
    name: Annotated[str, typer.Argument(help="org/app")],
    env: Annotated[str, typer.Option("--env", "-e", help="environment")],
    idempotency_key: str | None = KeyOption,
    wait: bool = WaitOption,
    timeout: float = TimeoutOption,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Remove an app from an environment; Flux prunes it from every cluster."""
    key = _key(idempotency_key)
    _change(
        server,
        token,
        lambda api: api.undeploy(name, env, idempotency_key=key),
        wait=wait,
        timeout=timeout,
        output=output,
    )


def status(
    name: Annotated[str | None, typer.Argument(help="org/app; default: every app")] = None,
    infra: Annotated[
        bool,
        typer.Option(
            "--infra",
            help="the release's infra resources per cluster (MaskinportenClient, AppCredentials)"
            " and whether they are Ready, as Flux's health checks report them",
        ),
    ] = False,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """What runs where: per environment and cluster, the revision Flux applied and its health."""
    if infra:
        _infra_status(name, server, token, output)
        return

    async def work(api: FjordClient) -> list[AppStatusView]:
        if name is None:
            return await api.matrix()
        return [await api.app_status(name)]

    rows = run(server, token, work)
    if output == Output.json:
        emit_json(rows if name is None else rows[0])
        return
    table = Table("app", "environment", "deployment", "cluster", "running", "health")
    for row in rows:
        for env in row.environments:
            deployment = env.deployment
            summary = (
                f"#{deployment.id} {deployment.kind} {deployment.state}" if deployment else "–"
            )
            cells: list[CellView | None] = [*env.clusters] or [None]
            for cell in cells:
                table.add_row(
                    f"{row.org}/{row.app}",
                    env.environment,
                    summary,
                    cell.cluster if cell else "–",
                    (cell.revision if cell else None) or "not running",
                    _health(cell),
                )
    out.print(table)


_INFRA_STYLES = {"ready": "green", "failed": "red", "unknown": "yellow"}


def _infra_status(name: str | None, server: str | None, token: str | None, output: Output) -> None:
    async def work(api: FjordClient) -> list[AppInfraView]:
        names = [name] if name else [f"{a.org}/{a.app}" for a in await api.matrix()]
        return [await api.app_infra(n) for n in names]

    rows = run(server, token, work)
    if output == Output.json:
        emit_json(rows if name is None else rows[0])
        return
    table = Table("app", "environment", "cluster", "resource", "state")
    for row in rows:
        for env in row.environments:
            for cluster in env.clusters:
                for r in cluster.resources:
                    state = styled(r.state, _INFRA_STYLES.get(r.state, ""))
                    table.add_row(
                        f"{row.org}/{row.app}",
                        env.environment,
                        cluster.cluster,
                        f"{r.kind}/{r.name}",
                        line(state, f": {r.message}" if r.message else ""),
                    )
    out.print(table)


def _health(cell: CellView | None) -> Text:
    if cell is None or cell.ready is None:
        return line("–")
    if cell.ready:
        return styled("ready", "green")
    return line(styled("failed", "red"), f": {cell.message}" if cell.message else "")


def _source(ref: str | None, commit: str | None) -> str:
    if commit is None:
        return "(not built from Git)"
    return f"{ref} ({commit[:12]})" if ref and ref != commit else commit[:12]


def history(
    name: Annotated[str, typer.Argument(help="org/app")],
    env: Annotated[str | None, typer.Option("--env", "-e", help="only this environment")] = None,
    limit: Annotated[int, typer.Option(help="how many deployments")] = 50,
    diff: Annotated[
        tuple[str, str] | None,
        typer.Option(help="show the manifest and config diff between two release digests"),
    ] = None,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Deployments of an app, newest first; ``--diff A B`` compares two releases."""
    if diff is not None:
        result = run(server, token, lambda api: api.diff(name, diff[0], diff[1]))
        if output == Output.json:
            emit_json(result)
            return
        print(f"# {result.from_digest} → {result.to_digest}")
        if result.from_commit or result.to_commit:
            print(f"{_source(result.from_ref, result.from_commit)} → "
                  f"{_source(result.to_ref, result.to_commit)}")  # fmt: skip
        if result.commits:
            print(f"## commits ({len(result.commits)})")
            for commit in result.commits:
                print(f"{commit.commit[:12]} {commit.subject} ({commit.author})")
        if result.compare_url:
            print(f"compare: {result.compare_url}")
        print("## dynamic config")
        print(result.config or "(unchanged)")
        print("## manifests")
        for item in result.files:
            print(item.diff, end="")
        if not result.files:
            print("(identical)")
        return
    rows = run(server, token, lambda api: api.history(name, environment=env, limit=limit))
    if output == Output.json:
        emit_json(rows)
        return
    table = Table(
        "#", "when", "env", "kind", "state", "release", "ref", "commit", "image", "config", "by"
    )
    for row in rows:
        table.add_row(
            str(row.id),
            row.created_at.isoformat()[:19],
            row.environment,
            row.kind,
            Text(row.state + (f": {row.reason}" if row.reason else "")),
            f"#{row.release_id} {_short(row.digest)}" if row.release_id else "",
            Text(row.ref or ""),
            (row.commit or "")[:12],
            Text(row.image or ""),
            f"v{row.config_version}" if row.config_version is not None else "",
            Text(row.requested_by),
        )
    out.print(table)
