"""``fjord audit``: who changed what, newest first (app-admins see their orgs)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from fjord.cli.client import ServerOption, TokenOption, run
from fjord.cli.output import Output, OutputOption, emit_json, out


def audit(
    org: Annotated[str | None, typer.Option(help="only this org")] = None,
    action: Annotated[
        str | None,
        typer.Option(help="only this action, e.g. deployment.rollback, release.unknown_revision"),
    ] = None,
    limit: Annotated[int, typer.Option(help="how many entries")] = 50,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """The audit log, newest first: who changed what, and what a cluster reported on its own."""
    rows = run(
        server,
        token,
        lambda api: api.audit(org=org, action=action, limit=limit),
    )
    if output == Output.json:
        emit_json(rows)
        return
    table = Table("#", "when", "actor", "action", "target", "detail")
    for row in rows:
        table.add_row(
            str(row.id),
            row.at.isoformat()[:19],
            row.actor,
            row.action,
            row.target,
            json.dumps(row.detail, separators=(",", ":"))[:120],
        )
    out.print(table)
