"""The release digest depends on the app and nothing about the machine that builds it.

Each condition is varied on its own against one baseline build of the example with its own
chart (the path through Helm staging): the checkout path, the time zone, the umask (files
copied into the staging directory get it) and the files' mtimes and modes. ``fjord release
build`` runs in-process with its defaults, so the default source and revision are covered too.
A chart that calls random or time functions is rendered twice and refused when the renders
differ; one that calls them without effect on the output passes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fjord.cli.main import app as cli
from fjord.control.sources import LOCAL_SOURCE, source_revision, source_url
from fjord.render import RenderError, render_app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "app-with-chart"


def build(app_dir: Path) -> dict[str, str]:
    result = CliRunner().invoke(cli, ["release", "build", str(app_dir), "-o", "json"])
    assert result.exit_code == 0, result.output
    built: dict[str, str] = json.loads(result.stdout)
    return built


def copy_example(target: Path) -> Path:
    shutil.copytree(EXAMPLE, target)
    return target


@contextmanager
def time_zone(name: str) -> Iterator[None]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ")
        else:
            os.environ["TZ"] = before
        time.tzset()


@contextmanager
def umask(mask: int) -> Iterator[None]:
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


def touch_everything(root: Path) -> None:
    for index, path in enumerate(sorted(root.rglob("*"))):
        os.utime(path, (1_000_000 + index * 7919, 2_000_000_000 - index * 104_729))
        if path.is_file():
            path.chmod(0o600 if index % 2 else 0o755)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> str:
    app_dir = copy_example(tmp_path_factory.mktemp("checkout") / "varsel")
    return build(app_dir)["digest"]


def test_the_default_source_is_not_the_checkout_path(tmp_path: Path) -> None:
    app_dir = copy_example(tmp_path / "elsewhere")
    built = build(app_dir)
    assert built["source"] == LOCAL_SOURCE
    assert str(tmp_path) not in json.dumps(built)


def test_git_source_is_origin_without_credentials(tmp_path: Path) -> None:
    app_dir = copy_example(tmp_path / "repo")
    git = ["git", "-C", str(app_dir)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run(
        [*git, "remote", "add", "origin", "https://user:token@git.example/ttd/varsel.git"],
        check=True,
    )
    assert source_url(app_dir) == "https://git.example/ttd/varsel.git"


ConditionFn = Callable[[Path], dict[str, str]]


def in_other_directory(tmp: Path) -> dict[str, str]:
    return build(copy_example(tmp / "a" / "much" / "deeper" / "checkout"))


def in_other_time_zone(tmp: Path) -> dict[str, str]:
    with time_zone("Pacific/Chatham"):
        return build(copy_example(tmp / "varsel"))


def with_other_umask(tmp: Path) -> dict[str, str]:
    with umask(0o077):
        return build(copy_example(tmp / "varsel"))


def with_other_mtimes_and_modes(tmp: Path) -> dict[str, str]:
    app_dir = copy_example(tmp / "varsel")
    touch_everything(app_dir)
    return build(app_dir)


@pytest.mark.parametrize(
    "condition",
    [in_other_directory, in_other_time_zone, with_other_umask, with_other_mtimes_and_modes],
    ids=lambda f: f.__name__,
)
def test_the_digest_does_not_depend_on(
    condition: ConditionFn, baseline: str, tmp_path: Path
) -> None:
    assert condition(tmp_path)["digest"] == baseline


def test_directory_revision_ignores_path_mtimes_and_modes(tmp_path: Path) -> None:
    first = copy_example(tmp_path / "one")
    second = copy_example(tmp_path / "two" / "nested")
    touch_everything(second)
    assert source_revision(first) == source_revision(second)
    (second / "fjord.yaml").write_text((second / "fjord.yaml").read_text() + "\n")
    assert source_revision(first) != source_revision(second)


def chart_app(tmp_path: Path, template: str) -> Path:
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    (chart / "templates" / "config.yaml").write_text(textwrap.dedent(template))
    (tmp_path / "fjord.yaml").write_text("org: ttd\napp: app1\nimage: x:1\nchart: {path: chart}\n")
    return tmp_path


def test_a_chart_whose_output_changes_between_renders_is_refused(tmp_path: Path) -> None:
    app_dir = chart_app(
        tmp_path,
        """\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: seed}
        data:
          token: {{ randAlphaNum 16 | quote }}
        """,
    )
    with pytest.raises(RenderError) as caught:
        render_app(app_dir, environments=["tt02"])
    assert caught.value.file == "c/templates/config.yaml"
    text = str(caught.value)
    assert (
        "c/templates/config.yaml: renders differently each time (the chart uses randAlphaNum)"
        in text
    )
    assert "sha256sum" in text  # how to fix it


def test_volatile_functions_without_effect_on_the_output_pass(tmp_path: Path) -> None:
    # `now` only decides something stable here (the year is far from changing mid-build).
    app_dir = chart_app(
        tmp_path,
        """\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: stable}
        data:
          modern: {{ gt (now | date "2006" | atoi) 2000 | quote }}
        """,
    )
    first = render_app(app_dir, environments=["tt02"])
    assert first.files == render_app(app_dir, environments=["tt02"]).files
