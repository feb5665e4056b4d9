"""``fjord app`` and ``fjord config``: register apps and version their dynamic config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import click
import typer
import yaml
from rich.table import Table
from rich.text import Text

from fjord.api.client import ApiError, FjordClient
from fjord.cli.client import EXIT_INVALID, ServerOption, TokenOption, run
from fjord.cli.output import Output, OutputOption, emit_json, err, fail, out, when
from fjord.control.views import ConfigVersionView, duration
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
    repo: Annotated[str, typer.Option(help="clone URL of the app's Git repository")],
    tag_pattern: Annotated[
        str, typer.Option(help="pushed tags matching this glob build a release ('' for none)")
    ] = "v*",
    deploy_branch: Annotated[
        str | None, typer.Option(help="a push to this branch deploys its head to --deploy-env")
    ] = None,
    deploy_env: Annotated[str | None, typer.Option(help="environment for --deploy-branch")] = None,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Register an app by its Git repository (with Gitea configured: also its webhook)."""
    result = run(
        server,
        token,
        lambda api: api.create_app(
            name,
            repo,
            tag_pattern=tag_pattern or None,
            deploy_branch=deploy_branch,
            deploy_environment=deploy_env,
        ),
    )
    if output == Output.json:
        emit_json(result)
        return
    hook = "webhook registered" if result.webhook else "no webhook (Gitea not configured)"
    out.print(
        f"registered {result.org}/{result.app} from {result.source} ({hook})", highlight=False
    )


@app_app.command("credential")
def credential(
    org: Annotated[str, typer.Argument(help="the org whose repositories the token reads")],
    git_token: Annotated[
        str,
        typer.Option(
            "--git-token",
            envvar="FJORD_GIT_TOKEN",
            prompt=True,
            hide_input=True,
            help="a Gitea token that can read the org's repositories (env: FJORD_GIT_TOKEN)",
        ),
    ],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
) -> None:
    """Set an org's read credential for its Git repositories (stored encrypted)."""
    run(server, token, lambda api: api.set_credential(org, git_token))
    out.print(f"read credential of org {org} set", highlight=False)


@app_app.command("list")
def list_apps(
    org: Annotated[str | None, typer.Option(help="only this org")] = None,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """List the apps you can see."""
    rows = run(server, token, lambda api: api.list_apps(org))
    if output == Output.json:
        emit_json(rows)
        return
    table = Table("app", "repository", "tags", "branch rule", "registered")
    for row in rows:
        rule = f"{row.deploy_branch} → {row.deploy_environment}" if row.deploy_branch else ""
        table.add_row(
            f"{row.org}/{row.app}",
            Text(row.source),
            Text(row.tag_pattern or ""),
            Text(rule),
            when(row.created_at),
        )
    out.print(table)


@app_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="org/app")],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Show one app."""
    row = run(server, token, lambda api: api.get_app(name))
    if output == Output.json:
        emit_json(row)
    else:
        out.print(f"{row.org}/{row.app}  repository: {row.source}", highlight=False)


@app_app.command("outcomes")
def outcomes(
    name: Annotated[str, typer.Argument(help="org/app")],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Delivery outcomes per environment: deployment frequency, lead time (request → ready),
    change failure rate, time to restore."""
    view = run(server, token, lambda api: api.outcomes(name))
    if output == Output.json:
        emit_json(view)
        return
    table = Table(
        "environment",
        "ready",
        "per day",
        "lead time",
        "failed",
        "failure rate",
        "time to restore",
        title=Text(f"{view.app}, last {view.window_days} days"),
    )
    for env in view.environments:
        rate = env.change_failure_rate
        table.add_row(
            Text(env.environment),
            str(env.ready),
            f"{env.deployments_per_day:.2f}",
            duration(env.lead_time_seconds),
            str(env.failed + env.rolled_back + env.aborted),
            "–" if rate is None else f"{rate:.0%}",
            duration(env.time_to_restore_seconds) + (f" ({env.restores}×)" if env.restores else ""),
        )
    out.print(table)


ExpectedVersionOption = typer.Option(
    None,
    "--expected-version",
    min=0,
    help="the config version your change is based on (0: none yet); a newer one makes the "
    "write fail (exit 5) instead of overwriting it. Default: the latest, read now",
)


def _read_values(file: Path) -> dict[str, Any]:
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
    return values


async def _write(
    api: FjordClient,
    name: str,
    values: dict[str, Any],
    reason: str,
    expected: int | None,
    *,
    again: str,
) -> ConfigVersionView:
    """Compare-and-set with ``expected``, or with the latest version read just now; a 409 says
    what to do in CLI terms (``again``: how to retry, given the current version)."""
    if expected is None:
        current = await api.get_config(name)
        expected = current.version if current else 0
        err.print(
            f"{name}: writing over config v{expected}, the latest "
            "(--expected-version makes the write fail if it changed since you read it)",
            highlight=False,
        )
    try:
        return await api.set_config(name, values, reason, expected_version=expected)
    except ApiError as exc:
        current_version = exc.details.get("current_version")
        if exc.status != 409 or current_version is None:
            raise
        hint = (
            f"nothing was written. See what changed: fjord config history {name} and "
            f"fjord config show {name}; then {again.format(current=current_version)}"
        )
        raise ApiError(exc.status, exc.message, hint, exc.details) from exc


def _written(name: str, result: ConfigVersionView, output: Output) -> None:
    if output == Output.json:
        emit_json(result)
    else:
        out.print(f"{name}: config v{result.version} by {result.author}", highlight=False)


@config_app.command("set")
def set_config(
    name: Annotated[str, typer.Argument(help="org/app")],
    file: Annotated[Path, typer.Option("--file", "-f", help="YAML with common/environments")],
    reason: Annotated[str, typer.Option(help="why (kept in the audit log)")],
    expected_version: int | None = ExpectedVersionOption,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Store a new version of an app's dynamic config."""
    values = _read_values(file)
    again = (
        "apply your change to version {current}, then run again with --expected-version {current}"
    )
    result = run(
        server,
        token,
        lambda api: _write(api, name, values, reason, expected_version, again=again),
    )
    _written(name, result, output)


@config_app.command("edit")
def edit_config(
    name: Annotated[str, typer.Argument(help="org/app")],
    reason: Annotated[str, typer.Option(help="why (kept in the audit log)")],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Edit the latest dynamic config in $EDITOR; stored only if nobody changed it meanwhile."""
    current = run(server, token, lambda api: api.get_config(name))
    version = current.version if current else 0
    text = yaml.safe_dump(current.values if current else {}, sort_keys=True)
    edited = click.edit(text, extension=".yaml")
    if edited is None or edited == text:
        err.print(f"{name}: unchanged, nothing written")
        return
    try:
        values = safe_load_bounded(edited, "the edited config", SPEC_LIMITS) or {}
    except YamlLimitError as exc:
        raise fail(exc, EXIT_INVALID) from exc
    except yaml.YAMLError as exc:
        raise fail(f"the edited config is not YAML: {exc}", EXIT_INVALID) from exc
    if not isinstance(values, dict):
        raise fail("the edited config must be a mapping with common/environments", EXIT_INVALID)
    again = "run fjord config edit again: it starts from version {current}"
    result = run(
        server,
        token,
        lambda api: _write(api, name, values, reason, version, again=again),
    )
    _written(name, result, output)


@config_app.command("show")
def show_config(
    name: Annotated[str, typer.Argument(help="org/app")],
    version: Annotated[int | None, typer.Option(help="a version; default: the latest")] = None,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Print a version of an app's dynamic config."""
    result = run(server, token, lambda api: api.get_config(name, version))
    if output == Output.json:
        emit_json(result)
    elif result is None:
        out.print(f"{name} has no dynamic config yet", highlight=False)
    else:
        out.print(
            f"# v{result.version} by {result.author}: {result.reason}",
            highlight=False,
            markup=False,
        )
        print(yaml.safe_dump(result.values, sort_keys=True), end="")


@config_app.command("history")
def config_history(
    name: Annotated[str, typer.Argument(help="org/app")],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Every version of an app's dynamic config: who and why."""
    rows = run(server, token, lambda api: api.config_versions(name))
    if output == Output.json:
        emit_json(rows)
        return
    table = Table("version", "when", "who", "why")
    for row in rows:
        table.add_row(str(row.version), when(row.created_at), row.author, row.reason)
    out.print(table)
