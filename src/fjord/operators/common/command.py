"""``fjord operator run``: fjord's Kubernetes operators in one process (kopf, standalone).

Defined here, beside the operators, so an operator process (:mod:`fjord.operators.common.main`)
never imports the rest of the ``fjord`` command; the ``fjord`` CLI mounts the same Typer app.
Errors are printed as plain text (never parsed as Rich markup) with exit code 2 for usage
mistakes and 1 for everything else.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from fjord.errors import FjordError
from fjord.operators.common import logs
from fjord.operators.common.runner import OPERATORS, RunConfig, load, parse_options, run

operator_app = typer.Typer(help="fjord's operators: credentials, janitor, maskinporten.")


def fail(message: object, code: int = 1) -> typer.Exit:
    """Print an error to stderr and return the Exit to raise: ``raise fail(exc) from exc``."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=code)


@operator_app.command("run")
def run_command(
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Watch this namespace; repeatable."),
    ] = None,
    all_namespaces: bool = typer.Option(False, "--all-namespaces", "-A", help="Watch all."),
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help=f"Run only these operators ({', '.join(OPERATORS)})."),
    ] = None,
    kubeconfig: Annotated[
        Path | None, typer.Option(envvar="KUBECONFIG", help="Default: in-cluster config.")
    ] = None,
    liveness: str = typer.Option(
        "127.0.0.1:8080", help="HOST:PORT of /healthz and /readyz ('' to disable)."
    ),
    metrics: str = typer.Option("127.0.0.1:9090", help="HOST:PORT of /metrics ('' to disable)."),
    admin_secret: Annotated[
        str | None,
        typer.Option(
            "--credentials-admin-secret",
            envvar="FJORD_CREDENTIALS_ADMIN_SECRET",
            help="NAMESPACE/NAME of the Secret with the PostgreSQL/Redis admin settings.",
        ),
    ] = None,
    resync: float = typer.Option(3600.0, "--resync", help="Periodic resync in seconds."),
    janitor_interval: float = typer.Option(900.0, help="Seconds between janitor sweeps."),
    workers: int = typer.Option(16, help="Concurrent reconciles of the credentials operator."),
    option: Annotated[
        list[str] | None, typer.Option("--option", help="KEY=VALUE for an operator; repeatable.")
    ] = None,
    log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Run the operators until interrupted (SIGTERM/SIGINT stop them gracefully)."""
    logs.configure(log_level)
    namespaces = tuple(namespace or ())
    if bool(namespaces) == all_namespaces:
        raise fail("give either --namespace (repeatable) or --all-namespaces", code=2)
    try:
        options = parse_options(option or [])
        if admin_secret:
            options.setdefault("credentials.admin-secret", admin_secret)
        options.setdefault("credentials.resync", str(resync))
        options.setdefault("credentials.workers", str(workers))
        options.setdefault("janitor.interval", str(janitor_interval))
        selected = tuple(only or OPERATORS)
        for name in selected:
            load(name)  # fail before connecting anywhere
        config = RunConfig(
            operators=selected,
            namespaces=namespaces,
            kubeconfig=kubeconfig,
            liveness=liveness or None,
            metrics=metrics or None,
            options=options,
        )
        asyncio.run(run(config))
    except FjordError as exc:
        raise fail(exc) from exc
