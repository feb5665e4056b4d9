"""Every `fjord` command prints its help: a broken option or Rich markup in a help fails here."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from typer.main import get_command
from typer.testing import CliRunner

from fjord.cli.main import RootGroup, app


def command_paths(group: Any, ctx: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name in group.list_commands(ctx) if hasattr(group, "list_commands") else []:
        paths += command_paths(group.get_command(ctx, name), ctx, (*prefix, name))
    return paths


def test_every_command_has_working_help() -> None:
    root = get_command(app)
    paths = command_paths(root, root.make_context("fjord", ["--help"], resilient_parsing=True))
    assert ("release", "build") in paths
    assert ("dev", "cluster", "up") in paths
    assert ("deploy",) in paths
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output, path


def test_the_root_lists_each_command_with_its_own_help_line() -> None:
    for name, lazy in RootGroup.lazy_commands.items():
        command = lazy.load(name)
        own = (command.help or "").strip().splitlines()[0]
        assert lazy.help == own, f"main.py's help for {name!r} differs from the command's: {own!r}"
    listed = CliRunner().invoke(app, ["--help"]).output
    for name in RootGroup.lazy_commands:
        assert f" {name} " in listed, name


def test_root_help_imports_no_sub_command() -> None:
    # `fjord --help` stays fast: no Kubernetes client, API app, dev platform or release builder.
    probe = (
        "import sys\n"
        "from fjord.cli.main import app\n"
        "try:\n"
        "    app(['--help'], prog_name='fjord')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('fjord.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    loaded = result.stdout.strip().splitlines()[-1]
    for heavy in ("fjord.kube", "fjord.api", "fjord.devcluster", "fjord.releases", "fjord.cli.dev"):
        assert f"'{heavy}'" not in loaded, loaded


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("fjord ")
