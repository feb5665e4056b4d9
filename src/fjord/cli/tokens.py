"""``fjord token``: API tokens with roles per org (the first one: run locally, no server)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from fjord.cli.client import EXIT_INVALID, ServerOption, TokenOption, run
from fjord.cli.output import Output, OutputOption, emit_json, err, fail, out

token_app = typer.Typer(help="API tokens (stored hashed; shown once).", no_args_is_help=True)


@token_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="who or what the token is for")],
    role: Annotated[
        list[str],
        typer.Option(
            help="ORG=ROLE (reader, developer, app-admin, platform-admin); ORG may be '*'"
        ),
    ],
    expires_days: Annotated[
        float | None, typer.Option("--expires-days", help="valid this many days; default: forever")
    ] = None,
    environment: Annotated[
        list[str] | None,
        typer.Option("--environment", help="act only in this environment (repeatable)"),
    ] = None,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Create a token. Without --server this works on the local database: the bootstrap path
    for the first platform-admin token."""
    grants = {}
    for item in role:
        org, sep, value = item.partition("=")
        if not sep:
            raise fail(f"--role wants ORG=ROLE, got {item!r}", EXIT_INVALID)
        grants[org] = value
    result = run(
        server,
        token,
        lambda api: api.create_token(
            name, grants, expires_in_days=expires_days, environments=environment
        ),
    )
    if output == Output.json:
        emit_json(result)
        return
    err.print(f"token {result.info.id} for {name} (shown once):", highlight=False)
    print(result.token)


@token_app.command("list")
def list_tokens(
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """List tokens (never their values)."""
    rows = run(server, token, lambda api: api.list_tokens())
    if output == Output.json:
        emit_json(rows)
        return
    table = Table("id", "name", "grants", "created by", "revoked")
    for row in rows:
        grants = ", ".join(f"{o}={r}" for o, r in row.grants.items())
        table.add_row(str(row.id), row.name, grants, row.created_by, str(row.revoked))
    out.print(table)


@token_app.command("revoke")
def revoke(
    token_id: Annotated[int, typer.Argument()],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
) -> None:
    """Revoke a token."""
    run(server, token, lambda api: api.revoke_token(token_id))
    err.print(f"token {token_id} revoked")
