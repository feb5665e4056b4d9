"""``fjord promotion APP --to ENV``: may the release be promoted now, and how long remains."""

from __future__ import annotations

from typing import Annotated

import typer

from fjord.cli.client import EXIT_CONFLICT, ServerOption, TokenOption, run
from fjord.cli.output import Output, OutputOption, emit_json, err, line, out, styled


def promotion(
    name: Annotated[str, typer.Argument(help="org/app")],
    to: Annotated[str, typer.Option("--to", help="target environment")],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Whether the release healthy in the previous environment may be promoted; what remains."""
    view = run(server, token, lambda api: api.promotion(name, to))
    if output == Output.json:
        emit_json(view)
    elif view.promotable:
        out.print(
            line(
                styled("promotable", "green"),
                f": {view.digest} has been healthy in {view.from_environment} for"
                f" {view.soak_seconds}s or more (fjord promote {name} --to {to})",
            )
        )
    else:
        err.print(line(styled("not yet", "yellow"), f": {view.reason}"))
    if not view.promotable:
        raise typer.Exit(EXIT_CONFLICT)
