"""``fjord app`` and ``fjord config``: register apps and version their dynamic config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from fjord.cli.client import (
    EXIT_INVALID,
    Api,
    ServerOption,
    TokenOption,
    run,
    split_app,
)
from fjord.cli.output import Output, OutputOption, emit_json, fail, out
from fjord.spec.yamlsource import SPEC_LIMITS
from fjord.yamllimits import YamlLimitError, read_bounded, safe_load_bounded

app_app = typer.Typer(
    help="Apps fjord deploys (org/app + where the source is).", no_args_is_help=True
)
config_app = typer.Typer(
    help="Dynamic config: versioned, audited settings not in git.", no_args_is_help=True
)


@app_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="org/app")],
    source: Annotated[Path, typer.Option(help="the app's directory (with fjord.yaml)")],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Register an app."""

    async def work(api: Api) -> Any:
        return await api.post(
            "/api/apps", {"name": split_app(name), "source": str(source.resolve())}
        )

    result = run(server, token, work)
    if output == Output.json:
        emit_json(result)
    else:
        out.print(f"registered {result['org']}/{result['app']} from {result['source']}")


@app_app.command("list")
def list_apps(
    org: Annotated[str | None, typer.Option(help="only this org")] = None,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """List the apps you can see."""
    rows = run(server, token, lambda api: api.get("/api/apps", org=org))
    if output == Output.json:
        emit_json(rows)
        return
    table = Table("app", "source", "registered")
    for row in rows:
        table.add_row(f"{row['org']}/{row['app']}", row["source"], row["created_at"])
    out.print(table)


@app_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="org/app")],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Show one app."""
    row = run(server, token, lambda api: api.get(f"/api/apps/{split_app(name)}"))
    if output == Output.json:
        emit_json(row)
    else:
        out.print(f"{row['org']}/{row['app']}  source: {row['source']}")


@config_app.command("set")
def set_config(
    name: Annotated[str, typer.Argument(help="org/app")],
    file: Annotated[Path, typer.Option("--file", "-f", help="YAML with common/environments")],
    reason: Annotated[str, typer.Option(help="why (kept in the audit log)")],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Store a new version of an app's dynamic config."""
    try:
        data = read_bounded(file, SPEC_LIMITS.max_bytes)
        values = safe_load_bounded(data, str(file), SPEC_LIMITS) or {}
    except YamlLimitError as exc:
        raise fail(exc, EXIT_INVALID) from exc
    except OSError as exc:
        raise fail(f"{file}: cannot read: {exc.strerror}", EXIT_INVALID) from exc
    except yaml.YAMLError as exc:
        raise fail(f"{file}: malformed YAML: {exc}", EXIT_INVALID) from exc
    if not isinstance(values, dict):
        raise fail(f"{file}: expected a mapping with common/environments", EXIT_INVALID)
    result = run(
        server,
        token,
        lambda api: api.put(
            f"/api/apps/{split_app(name)}/config", {"values": values, "reason": reason}
        ),
    )
    if output == Output.json:
        emit_json(result)
    else:
        out.print(f"{name}: config v{result['version']} by {result['author']}")


@config_app.command("show")
def show_config(
    name: Annotated[str, typer.Argument(help="org/app")],
    version: Annotated[int | None, typer.Option(help="a version; default: the latest")] = None,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Print a version of an app's dynamic config."""
    result = run(
        server, token, lambda api: api.get(f"/api/apps/{split_app(name)}/config", version=version)
    )
    if output == Output.json:
        emit_json(result)
    elif result is None:
        out.print(f"{name} has no dynamic config yet")
    else:
        out.print(f"# v{result['version']} by {result['author']}: {result['reason']}")
        print(yaml.safe_dump(result["values"], sort_keys=True), end="")


@config_app.command("history")
def config_history(
    name: Annotated[str, typer.Argument(help="org/app")],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Every version of an app's dynamic config: who and why."""
    rows = run(server, token, lambda api: api.get(f"/api/apps/{split_app(name)}/config/versions"))
    if output == Output.json:
        emit_json(rows)
        return
    table = Table("version", "when", "who", "why")
    for row in rows:
        table.add_row(str(row["version"]), row["created_at"], row["author"], row["reason"])
    out.print(table)
