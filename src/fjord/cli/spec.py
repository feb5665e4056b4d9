"""``fjord schema``: print the JSON Schema of ``fjord.yaml`` (or of the platform config)."""

from __future__ import annotations

import json

import typer

from fjord.spec.schema import app_spec_schema, platform_schema


def schema_command(
    platform: bool = typer.Option(
        False, "--platform", help="Print the platform config's schema instead of the app spec's."
    ),
) -> None:
    """Print the JSON Schema of the app spec, for editors and CI validation."""
    document = platform_schema() if platform else app_spec_schema()
    typer.echo(json.dumps(document, indent=2, sort_keys=True))
