"""Hostile YAML is refused in bounded memory, with the file, line and limit named.

Every place YAML enters: fjord.yaml, platform config, dynamic-config values (``fjord config
set -f``), Chart.yaml and what a chart renders. Memory is measured with tracemalloc (Python
allocations, which is where an alias expansion or a whole-file read would show up).
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fjord.cli.client import EXIT_INVALID
from fjord.cli.main import app as cli
from fjord.render import render_app
from fjord.render.errors import RenderError
from fjord.render.helm import _parse as parse_rendered
from fjord.spec import SpecError, load_app_spec, load_platform, parse_app_spec
from fjord.yamllimits import MAX_DEPTH, check_depth

MEMORY_BOUND = 64 * 1024 * 1024  # far below what any of these inputs would take if expanded


def billion_laughs() -> str:
    """Nine levels of ten aliases: 10^9 strings once expanded, 700 bytes as text."""
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "org: ttd\napp: lol\nimage: x:1\nchart:\n  values:\n" + "".join(
        f"    {line}\n" for line in lines
    )


def peak_memory(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
    except Exception:  # noqa: S110 - the callers assert on the error separately
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def spec_problem(text: str | bytes) -> str:
    with pytest.raises(SpecError) as caught:
        parse_app_spec(text, "apps/lol/fjord.yaml")
    return str(caught.value)


def test_billion_laughs_in_a_spec_is_refused_naming_the_limit() -> None:
    text = billion_laughs()
    assert len(text) < 1000
    message = spec_problem(text)
    assert "apps/lol/fjord.yaml:" in message
    assert "more than 500000 values once its aliases" in message
    assert "fewer nested aliases" in message
    assert peak_memory(lambda: parse_app_spec(text, "f")) < MEMORY_BOUND


def test_a_few_honest_aliases_still_work() -> None:
    spec = parse_app_spec(
        "org: ttd\napp: a\nimage: x:1\nchart:\n  path: c\n  values:\n"
        "    base: &base {a: 1}\n    copy: *base\n"
    )
    assert spec.chart is not None
    assert spec.chart.values["copy"] == {"a": 1}


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("flow", "org: " + "[" * 200_000 + "]" * 200_000),
        ("block", "org:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1_000))),
        ("sequence", "org:\n" + "- " * 100_000 + "x\n"),
    ],
)
def test_deep_nesting_is_refused_before_the_parser_recurses(name: str, text: str) -> None:
    message = spec_problem(text)
    assert f"nesting is deeper than {MAX_DEPTH} levels" in message, name
    assert "flatten the structure" in message


def test_nesting_within_the_limit_parses() -> None:
    depth = MAX_DEPTH - 8
    text = "org: ttd\napp: a\nimage: x:1\nchart:\n  path: c\n  values:\n    v: " + (
        "[" * depth + "1" + "]" * depth + "\n"
    )
    assert parse_app_spec(text).chart is not None


def test_the_cheap_depth_bound_never_lets_deep_input_through() -> None:
    # The pre-check may skip the event scan; it must never do so for input deeper than the
    # limit, whatever mix of block and flow nesting.
    for depth in range(MAX_DEPTH + 1, MAX_DEPTH + 4):
        compact = "".join("  " * (i // 2) + ("- " if i % 2 else "k:") + "\n" for i in range(depth))
        for text in (compact, "- " * depth + "x", "k: " + "{a: " * depth + "1" + "}" * depth):
            with pytest.raises(Exception, match="deeper than"):
                check_depth(text, "t.yaml")


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fjord.yaml"
    os.mkfifo(path)
    return path


def test_a_fifo_is_refused_without_waiting_for_a_writer(fifo: Path) -> None:
    with pytest.raises(SpecError, match="is not a regular file"):
        load_app_spec(fifo)


def test_a_device_is_refused_unread() -> None:
    with pytest.raises(SpecError, match="/dev/zero: is not a regular file"):
        load_platform("/dev/zero")
    assert peak_memory(lambda: load_app_spec("/dev/zero")) < MEMORY_BOUND


def test_a_huge_file_is_refused_by_its_size_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "fjord.yaml"
    with path.open("wb") as sparse:
        sparse.truncate(4 * 1024**3)  # 4 GiB, sparse: reading it would show in the peak
    with pytest.raises(SpecError) as caught:
        load_app_spec(path)
    assert "is 4294967296 bytes; the limit is 1048576 bytes" in str(caught.value)
    assert peak_memory(lambda: load_app_spec(path)) < MEMORY_BOUND


def test_chart_output_with_an_alias_bomb_names_the_template() -> None:
    text = "kind: ConfigMap\n" + billion_laughs().split("chart:\n", 1)[1].replace(
        "  values:", "data:"
    )
    with pytest.raises(RenderError) as caught:
        parse_rendered("mychart/templates/bomb.yaml", text)
    assert caught.value.file == "mychart/templates/bomb.yaml"
    assert "once its aliases" in str(caught.value)
    assert peak_memory(lambda: parse_rendered("t", text)) < MEMORY_BOUND


def test_chart_output_nested_too_deep_names_the_template_and_line() -> None:
    text = "kind: ConfigMap\ndata:\n  x: " + "[" * 100_000 + "]" * 100_000 + "\n"
    with pytest.raises(RenderError, match=r"mychart/templates/deep.yaml:3: nesting is deeper"):
        parse_rendered("mychart/templates/deep.yaml", text)


def test_dynamic_config_values_from_a_device_are_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "values.yaml"
    bomb.write_text(billion_laughs())
    runner = CliRunner()
    for path, expected in (("/dev/zero", "is not a regular file"), (bomb, "once its aliases")):
        result = runner.invoke(cli, ["config", "set", "ttd/app1", "-f", str(path), "--reason", "r"])
        assert result.exit_code == EXIT_INVALID, result.output
        assert expected in result.output


def test_a_fifo_inside_a_chart_is_refused_not_read(tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    os.mkfifo(chart / "templates" / "pipe.yaml")
    (tmp_path / "fjord.yaml").write_text("org: ttd\napp: a\nimage: x:1\nchart: {path: chart}\n")
    with pytest.raises(RenderError) as caught:
        render_app(tmp_path, environments=["tt02"])
    assert caught.value.file == "chart/templates/pipe.yaml"
    assert "is not a regular file" in str(caught.value)
