"""A ``pip install``ed fjord builds and verifies releases with no checkout and no Go cache.

The wheel is built from this checkout and installed into a fresh virtualenv in a temporary
directory. fjord then runs from that virtualenv only: the working directory is outside the
checkout, nothing is on PYTHONPATH, HOME and FJORD_CACHE_DIR point at empty directories and Go is
not on PATH, so the pre-publish checks can only use the Kubernetes schemas inside the wheel.

Dependencies come from a wheelhouse under fjord's cache (filled from PyPI on the first run and
whenever a pin changes), so later runs install offline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml

from fjord.devcluster.binaries import cache_root
from fjord.releases import build_release
from fjord.spec.platform import default_platform

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {"platform-app": ("ttd", "skjema"), "app-with-chart": ("digdir", "varsel")}
BUILD_BACKEND = "hatchling>=1.27"  # [build-system] in pyproject.toml
SOURCE = "https://git.example/{app}"
REVISION = "main@sha1:0123456789abcdef0123456789abcdef01234567"


def _run(args: Sequence[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result


def _pip(
    command: str, *args: str | Path, python: str | Path = sys.executable, offline: bool = True
) -> None:
    # PIP_NO_INDEX also reaches pip's isolated build environment (the build backend).
    env = {**os.environ, "PIP_NO_INDEX": "1"} if offline else dict(os.environ)
    _run([python, "-m", "pip", command, "-q", *args], env=env)


def _fill(wheelhouse: Path, *requirements: str | Path) -> None:
    """Download ``requirements`` and their dependencies from PyPI into ``wheelhouse``."""
    _pip("download", "--find-links", wheelhouse, "-d", wheelhouse, *requirements, offline=False)
    for stale in wheelhouse.glob("fjord-*.whl"):  # fjord itself always comes from the build
        stale.unlink()


def _offline_or_filled(
    wheelhouse: Path,
    requirement: str | Path,
    command: str,
    *args: str | Path,
    python: str | Path = sys.executable,
) -> None:
    """``pip command`` from the wheelhouse alone; if something is missing, fetch it and retry."""
    try:
        _pip(command, "--find-links", wheelhouse, *args, python=python)
    except AssertionError:
        _fill(wheelhouse, requirement)
        _pip(command, "--find-links", wheelhouse, *args, python=python)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("wheel")
    wheelhouse = cache_root() / "wheelhouse"
    wheelhouse.mkdir(parents=True, exist_ok=True)
    dist = tmp / "dist"
    _offline_or_filled(wheelhouse, BUILD_BACKEND, "wheel", "--no-deps", "-w", dist, ROOT)
    (wheel,) = dist.glob("fjord-*.whl")
    _run([sys.executable, "-m", "venv", tmp / "venv"])
    python = tmp / "venv" / "bin" / "python"
    _offline_or_filled(wheelhouse, wheel, "install", wheel, python=python)
    yield tmp / "venv"
    shutil.rmtree(tmp / "venv", ignore_errors=True)  # ~0.5 GB


def _isolated_env(venv: Path, home: Path) -> dict[str, str]:
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",  # no Go toolchain
        "HOME": str(home),
        "FJORD_CACHE_DIR": str(home / "cache"),
        "LANG": "C.UTF-8",
    }
    # Keep the test session's mark, so a leaked process would still be found.
    env.update({k: v for k, v in os.environ.items() if k == "FJORD_TEST_SESSION"})
    return env


def test_installed_wheel_builds_and_verifies_both_sample_apps(venv: Path, tmp_path: Path) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = _isolated_env(venv, home)

    def fjord(*args: str) -> subprocess.CompletedProcess[str]:
        return _run([venv / "bin" / "fjord", *args], cwd=work, env=env)

    where = _run(
        [venv / "bin" / "python", "-c", "import fjord, sys; print(fjord.__file__, sys.path)"],
        cwd=work,
        env=env,
    ).stdout
    assert where.startswith(str(venv)), where
    assert str(ROOT) not in where
    fjord("keys", "generate")
    store = f"file://{tmp_path / 'store'}"
    for example, (org, app) in EXAMPLES.items():
        app_dir = work / example
        shutil.copytree(ROOT / "examples" / example, app_dir)
        source = SOURCE.format(app=app)
        built = json.loads(
            fjord(
                "release", "build", example, "--source", source, "--revision", REVISION,
                "--publish", store, "--key", "cosign.key", "--tag", "tt02", "-o", "json",
            ).stdout
        )  # fmt: skip
        assert built["published"]["tags"] == ["tt02"]
        verified = json.loads(
            fjord(
                "release", "verify", store, f"{org}/apps/{app}:tt02", "--key", "cosign.pub",
                "-o", "json",
            ).stdout
        )  # fmt: skip
        assert verified == {"digest": built["digest"], "revision": REVISION, "verified": True}
        # The same release, byte for byte, as this checkout builds.
        here = build_release(ROOT / "examples" / example, source=source, revision=REVISION)
        assert built["digest"] == here.digest
    # The checks use the shipped schemas of the version the platform names, and only those.
    platform = default_platform().model_dump(mode="json", by_alias=True)
    (work / "platform.yaml").write_text(yaml.safe_dump({**platform, "kubernetesVersion": "1.20"}))
    refused = subprocess.run(
        [venv / "bin" / "fjord", "release", "build", "platform-app", "--platform", "platform.yaml"],
        cwd=work, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "no schemas for Kubernetes 1.20" in refused.stderr + refused.stdout
