"""User text containing Rich markup is printed literally by every kind of CLI output.

Keys, values, reasons and a chart's ``fail`` message all reach the terminal; ``[/]`` used to
crash Rich and ``[bold]x[/bold]`` lost its brackets. The real commands run here (release build
on a real chart, the control-plane commands in-process on a data directory).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.table import Table
from typer.testing import CliRunner

from fjord.cli.client import EXIT_INVALID
from fjord.cli.main import app as cli
from fjord.cli.output import err, fail, out

MARKUP = "[bold]x[/] [/] [link=https://evil.example]y[/link] :smile: [red"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_a_spec_key_with_markup_is_printed_literally(tmp_path: Path) -> None:
    (tmp_path / "fjord.yaml").write_text(
        f"org: ttd\napp: a\nimage: x:1\n'{MARKUP}': 1\n", encoding="utf-8"
    )
    code, output = run("release", "build", str(tmp_path))
    assert code != 0
    assert MARKUP in output, output


def test_a_charts_fail_message_with_markup_is_printed_literally(tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    (chart / "templates" / "x.yaml").write_text('{{ fail "[bold]boom[/] [/] [link=x]y[/link]" }}')
    (tmp_path / "fjord.yaml").write_text(
        "org: ttd\napp: a\nimage: x:1\nchart:\n  path: chart\n", encoding="utf-8"
    )
    code, output = run("release", "build", str(tmp_path))
    assert code != 0
    assert "[bold]boom[/] [/] [link=x]y[/link]" in output, output


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FJORD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("FJORD_SERVER", raising=False)
    monkeypatch.delenv("FJORD_PLATFORM", raising=False)
    return tmp_path


def test_control_plane_errors_and_tables_print_markup_literally(data_dir: Path) -> None:
    code, output = run("app", "create", "ttd/[bold]x[/]", "--repo", "http://gitea.invalid/x.git")
    assert code == EXIT_INVALID
    assert "[bold]x[/]" in output, output

    # Config writes only: the repository is never fetched.
    code, output = run("app", "create", "ttd/app1", "--repo", "http://gitea.invalid/[b]src[x].git")
    assert code == 0, output
    assert "[b]src[x]" in output
    values = data_dir / "values.yaml"
    values.write_text(textwrap.dedent("common:\n  '[/]': '[bold]v[/bold]'\n"))
    code, output = run("config", "set", "ttd/app1", "-f", str(values), "--reason", "[/] [b]why")
    assert code == 0, output
    code, output = run("config", "history", "ttd/app1")
    assert code == 0, output
    assert "[/] [b]why" in output, output
    code, output = run("config", "show", "ttd/app1")
    assert code == 0, output
    assert "[bold]v[/bold]" in output
    assert "[/] [b]why" in output


# Printable text with many brackets, slashes, colons and equals signs: what markup is made of.
texts = st.text(alphabet=st.sampled_from(list("[]/=:#@ ablinkreds,.")), max_size=60) | st.text(
    alphabet=st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"]), max_size=60
)


@settings(max_examples=300, deadline=None)
@given(message=texts)
def test_fuzz_error_printing_is_literal_and_never_crashes(message: str) -> None:
    with err.capture() as captured:
        fail(message)
    assert captured.get() == f"error: {message}\n"


@settings(max_examples=150, deadline=None)
@given(cells=st.lists(texts, min_size=2, max_size=2))
def test_fuzz_table_cells_are_literal_and_never_crash(cells: list[str]) -> None:
    table = Table("a", "b", title=cells[0])
    table.add_row(*cells)
    width = out.width
    out.width = 400  # wide enough that no cell wraps, so each is one literal run
    try:
        with out.capture() as captured:
            out.print(table)
    finally:
        out.width = width
    lines = captured.get().splitlines()
    assert cells[0].strip() in lines[0]
    assert any(cells[0] in row and cells[1] in row for row in lines[3:]), lines
