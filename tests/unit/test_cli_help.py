"""Every `fjord` command prints its help: a broken option or Rich markup in a help fails here."""

from __future__ import annotations

from typer.main import get_command
from typer.testing import CliRunner

from fjord.cli.main import app


def command_paths(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, command in getattr(group, "commands", {}).items():
        paths += command_paths(command, (*prefix, name))
    return paths


def test_every_command_has_working_help() -> None:
    root = get_command(app)
    paths = command_paths(root)
    assert ("release", "build") in paths
    assert ("dev", "cluster", "up") in paths
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output, path


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("fjord ")
