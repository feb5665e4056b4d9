"""Entry point of the ``fjord`` command: global options and the sub-commands (loaded lazily)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import typer

from fjord import __version__
from fjord.cli.lazy import LazyCommand, LazyGroup


class RootGroup(LazyGroup):
    # In the order `fjord --help` lists them: the daily work first, then setup and local tools.
    # Each help line must equal the command's own (tests/unit/test_cli_help.py checks).
    lazy_commands: ClassVar[Mapping[str, LazyCommand]] = {
        "deploy": LazyCommand(
            "fjord.cli.deploys",
            "deploy",
            "Build, publish and deploy an app to an environment; follow every cluster.",
        ),
        "status": LazyCommand(
            "fjord.cli.deploys",
            "status",
            "What runs where: per environment and cluster, the revision Flux applied and its"
            " health.",
        ),
        "history": LazyCommand(
            "fjord.cli.deploys",
            "history",
            "Deployments of an app, newest first; ``--diff A B`` compares two releases.",
        ),
        "promote": LazyCommand(
            "fjord.cli.deploys",
            "promote",
            "Promote the release ready in the previous environment (same digest) to ``--to``.",
        ),
        "promotion": LazyCommand(
            "fjord.cli.promotions",
            "promotion",
            "Whether the release healthy in the previous environment may be promoted; what"
            " remains.",
        ),
        "approve": LazyCommand(
            "fjord.cli.deploys", "approve", "Approve a deployment (app-admin), then follow it."
        ),
        "rollout": LazyCommand(
            "fjord.cli.rollouts",
            "rollout_app",
            "Rollouts in waves: show the waves, resume, abort or roll back (app-admin).",
        ),
        "notify": LazyCommand(
            "fjord.cli.notify",
            "notify_app",
            "Outbound webhooks for deployment events (signed; retried; a delivery log).",
        ),
        "window": LazyCommand(
            "fjord.cli.windows",
            "window_app",
            "Delivery windows: when deployments may reach an environment; override one (audited).",
        ),
        "rollback": LazyCommand(
            "fjord.cli.deploys",
            "rollback",
            "Point an environment at an earlier release (recorded as a deployment).",
        ),
        "rotate": LazyCommand(
            "fjord.cli.deploys",
            "rotate",
            "New PostgreSQL and Redis credentials for an app in one environment, by a deploy.",
        ),
        "undeploy": LazyCommand(
            "fjord.cli.deploys",
            "undeploy",
            "Remove an app from an environment; Flux prunes it from every cluster.",
        ),
        "audit": LazyCommand(
            "fjord.cli.audit",
            "audit",
            "The audit log, newest first: who changed what, and what a cluster reported on its"
            " own.",
        ),
        "app": LazyCommand(
            "fjord.cli.apps", "app_app", "Apps fjord deploys (org/app + where the source is)."
        ),
        "config": LazyCommand(
            "fjord.cli.apps",
            "config_app",
            "Dynamic config: versioned, audited settings not in git.",
        ),
        "cluster": LazyCommand(
            "fjord.cli.clusters", "cluster_app", "The clusters of each org and environment."
        ),
        "login": LazyCommand(
            "fjord.cli.login",
            "login",
            "Sign in to a fjord server through its OpenID provider; it becomes the current"
            " context.",
        ),
        "context": LazyCommand(
            "fjord.cli.login",
            "context_app",
            "Signed-in servers (fjord login); like kubectl's contexts.",
        ),
        "token": LazyCommand(
            "fjord.cli.tokens", "token_app", "API tokens (stored hashed; shown once)."
        ),
        "release": LazyCommand(
            "fjord.cli.release",
            "release_app",
            "Build, publish, verify and inspect signed releases (Flux OCI artifacts + provenance); "
            "create, list and show the control plane's releases.",
        ),
        "keys": LazyCommand(
            "fjord.cli.keys",
            "keys_app",
            "Signing keys for releases (cosign-compatible ECDSA P-256).",
        ),
        "schema": LazyCommand(
            "fjord.cli.spec",
            "schema_command",
            "Print the JSON Schema of the app spec, for editors and CI validation.",
        ),
        "serve": LazyCommand(
            "fjord.cli.serve",
            "serve",
            "Serve the control plane's API (/api, /openapi.json) and web UI (/).",
        ),
        "operator": LazyCommand(
            "fjord.cli.operator",
            "operator_app",
            "fjord's operators: credentials, janitor, maskinporten.",
        ),
        "maskinporten": LazyCommand(
            "fjord.cli.maskinporten",
            "maskinporten_app",
            "Maskinporten: a local emulator of the Digdir APIs, and keys.",
        ),
        "dev": LazyCommand(
            "fjord.cli.dev",
            "dev_app",
            "Run fjord's local platform: clusters, Flux and a registry.",
        ),
    }


app = typer.Typer(
    name="fjord",
    cls=RootGroup,
    help="fjord turns apps into signed releases that Kubernetes clusters pull with Flux.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fjord {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """fjord: pull-based deploys with per-app infrastructure."""
