"""``fjord notify``: outbound webhooks for deployment events (CloudEvents or Slack-style)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from fjord.cli.client import ServerOption, TokenOption, run
from fjord.cli.output import Output, OutputOption, emit_json, err, out

notify_app = typer.Typer(
    help="Outbound webhooks for deployment events (signed; retried; a delivery log).",
    no_args_is_help=True,
)


@notify_app.command("add")
def add(
    org: Annotated[str, typer.Argument(help="org")],
    url: Annotated[str, typer.Argument(help="where to POST the events")],
    app: Annotated[str | None, typer.Option(help="only this app's events")] = None,
    format_: Annotated[
        str, typer.Option("--format", help="cloudevents, or slack for incoming webhooks")
    ] = "cloudevents",
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Send the org's (or one app's) deployment events to URL; prints the signing secret once."""
    created = run(
        server, token, lambda api: api.create_notification_hook(org, url, app=app, format_=format_)
    )
    if output == Output.json:
        emit_json(created)
        return
    out.print(f"hook {created.hook.id}: {created.hook.url} ({created.hook.format})")
    err.print("HMAC secret (X-Fjord-Signature: sha256=…), shown once:")
    print(created.secret)


@notify_app.command("list")
def list_hooks(
    org: Annotated[str, typer.Argument(help="org")],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """The org's hooks: where, which app, enabled or why disabled."""
    hooks = run(server, token, lambda api: api.notification_hooks(org))
    if output == Output.json:
        emit_json(hooks)
        return
    table = Table("id", "app", "url", "format", "enabled", "failures", "disabled because")
    for hook in hooks:
        table.add_row(
            str(hook.id), hook.app or "(all)", hook.url, hook.format, str(hook.enabled),
            str(hook.failures), hook.disabled_reason or "",
        )  # fmt: skip
    out.print(table)


@notify_app.command("enable")
def enable(
    hook_id: Annotated[int, typer.Argument(help="hook id")],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
) -> None:
    """Enable a hook that was disabled after repeated failures (audited)."""
    hook = run(server, token, lambda api: api.enable_notification_hook(hook_id))
    out.print(f"hook {hook.id} enabled")


@notify_app.command("log")
def log(
    hook_id: Annotated[int, typer.Argument(help="hook id")],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """The hook's deliveries, newest first: event, state, tries, last answer or error."""
    rows = run(server, token, lambda api: api.notification_deliveries(hook_id))
    if output == Output.json:
        emit_json(rows)
        return
    table = Table("id", "event", "type", "state", "tries", "last answer")
    for row in rows:
        last = row.last_error or (str(row.last_status) if row.last_status else "")
        table.add_row(str(row.id), row.event_id, row.event_type, row.state, str(row.attempts), last)
    out.print(table)
