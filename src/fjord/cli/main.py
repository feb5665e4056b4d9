"""Entry point of the ``fjord`` command: global options and the sub-command groups."""

from __future__ import annotations

import typer

from fjord import __version__
from fjord.cli.dev import dev_app
from fjord.cli.keys import keys_app
from fjord.cli.maskinporten import maskinporten_app
from fjord.cli.release import release_app
from fjord.cli.spec import schema_command

app = typer.Typer(
    name="fjord",
    help="fjord turns apps into signed releases that Kubernetes clusters pull with Flux.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)
app.add_typer(dev_app, name="dev")
app.add_typer(maskinporten_app, name="maskinporten")
app.command("schema")(schema_command)
app.add_typer(keys_app, name="keys")
app.add_typer(release_app, name="release")
app.add_typer(__import__("fjord.cli.operator", fromlist=["_"]).operator_app, name="operator")
__import__("fjord.cli.apps", fromlist=["register"]).register(app)
__import__("fjord.cli.deploys", fromlist=["register"]).register(app)
__import__("fjord.cli.clusters", fromlist=["register"]).register(app)
__import__("fjord.cli.tokens", fromlist=["register"]).register(app)
__import__("fjord.cli.serve", fromlist=["register"]).register(app)


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
