"""``fjord window``: an environment's delivery windows now; a platform-admin's override."""

from __future__ import annotations

from typing import Annotated

import typer

from fjord.cli.client import ServerOption, TokenOption, run
from fjord.cli.output import Output, OutputOption, emit_json, out

window_app = typer.Typer(
    help="Delivery windows: when deployments may reach an environment; override one (audited).",
    no_args_is_help=True,
)


@window_app.command("show")
def show(
    environment: Annotated[str, typer.Argument(help="environment")],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Whether the environment's delivery window is open now, and until or from when."""
    view = run(server, token, lambda api: api.environment_window(environment))
    if output == Output.json:
        emit_json(view)
        return
    if not view.windows:
        out.print(f"{environment} has no delivery windows: deployments go at any time")
    elif view.open:
        out.print(f"{environment} is open until {view.closes_at:%Y-%m-%d %H:%M:%S} UTC")
    else:
        out.print(
            f"{environment} is closed; the next window opens at"
            f" {view.opens_at:%Y-%m-%d %H:%M:%S} UTC ({view.time_zone})"
        )


@window_app.command("override")
def override(
    deployment_id: Annotated[int, typer.Argument(help="the waiting deployment")],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Let a deployment through outside its delivery window (platform-admin; audited)."""
    view = run(server, token, lambda api: api.override_window(deployment_id))
    if output == Output.json:
        emit_json(view)
        return
    out.print(f"deployment {view.id} goes ahead outside the window ({view.state})")
