"""``fjord rollout``: a deployment's waves; resume, abort or roll back a halted rollout."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from fjord.cli.client import EXIT_FAILED, ServerOption, TokenOption, run
from fjord.cli.output import Output, OutputOption, emit_json, err, fail, line, out, styled
from fjord.control.views import DeploymentView, RolloutView

rollout_app = typer.Typer(
    help="Rollouts in waves: show the waves, resume, abort or roll back (app-admin).",
    no_args_is_help=True,
)

IdArgument = typer.Argument(help="the deployment")
_COLOURS = {"done": "green", "halted": "red", "soaking": "cyan", "running": "yellow"}


def waves_table(deployment: DeploymentView, rollout: RolloutView) -> Table:
    table = Table(
        title=f"#{deployment.id} {deployment.org}/{deployment.app} → {deployment.environment}:"
        f" rollout {rollout.state}, wave {rollout.wave} of {len(rollout.waves)}"
    )
    for column in ("wave", "state", "clusters", "soak", "started", "ready"):
        table.add_column(column)
    for wave in rollout.waves:
        table.add_row(
            str(wave.number),
            styled(wave.state, _COLOURS.get(wave.state, "dim")),
            ", ".join(wave.clusters),
            f"{wave.soak_seconds}s",
            f"{wave.started_at:%H:%M:%S}" if wave.started_at else "",
            f"{wave.ready_at:%H:%M:%S}" if wave.ready_at else "",
        )
    return table


def _print(deployment: DeploymentView, output: Output) -> None:
    if output == Output.json:
        emit_json(deployment.rollout)
        return
    rollout = deployment.rollout
    if rollout is None:
        raise fail(f"deployment {deployment.id} does not roll out in waves", EXIT_FAILED)
    out.print(waves_table(deployment, rollout))
    if rollout.message:
        err.print(line(styled("halted:", "red"), " ", rollout.message))
    if rollout.next_check:
        err.print(f"next check {rollout.next_check:%H:%M:%S} UTC")


@rollout_app.command("show")
def show(
    deployment_id: Annotated[int, IdArgument],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """The waves of a deployment: which clusters, state, soak, when each started and was ready."""
    _print(run(server, token, lambda api: api.get_deployment(deployment_id)), output)


def _act(
    action: str, deployment_id: int, server: str | None, token: str | None, output: Output
) -> None:
    _print(run(server, token, lambda api: api.rollout_action(deployment_id, action)), output)


@rollout_app.command("resume")
def resume(
    deployment_id: Annotated[int, IdArgument],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Try a halted rollout's wave again (the health gate starts over). Audited."""
    _act("resume", deployment_id, server, token, output)


@rollout_app.command("abort")
def abort(
    deployment_id: Annotated[int, IdArgument],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Stop a rollout where it is; no later wave starts. Audited."""
    _act("abort", deployment_id, server, token, output)


@rollout_app.command("rollback")
def rollback(
    deployment_id: Annotated[int, IdArgument],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Return every cluster the rollout moved to what it ran before. Audited."""
    _act("rollback", deployment_id, server, token, output)
