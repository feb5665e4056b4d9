"""``fjord config set``: the real command (local control plane, in-process API) sends the
version it is based on; a stale one exits 5 and says what to do; nothing is overwritten."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

APP = "ttd/skjema"


def fjord(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FJORD_SERVER", "FJORD_TOKEN")}
    return subprocess.run(
        [sys.executable, "-m", "fjord.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "FJORD_DATA_DIR": str(data_dir), "COLUMNS": "200"},
        check=False,
    )


def test_config_set_is_compare_and_set_and_explains_a_conflict(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # Config writes only: the repository is never fetched.
    created = fjord(data, "app", "create", APP, "--repo", "http://gitea.invalid/ttd/skjema.git")
    assert created.returncode == 0, created.stderr
    first = tmp_path / "first.yaml"
    first.write_text("common:\n  env:\n    A: '1'\n")
    second = tmp_path / "second.yaml"
    second.write_text("common:\n  env:\n    A: '2'\n")

    # Without --expected-version: on top of the latest, said on stderr.
    written = fjord(data, "config", "set", APP, "-f", str(first), "--reason", "one", "-o", "json")
    assert written.returncode == 0, written.stderr
    assert json.loads(written.stdout)["version"] == 1
    assert "writing over config v0, the latest" in written.stderr

    # Based on a version that is no longer the latest: exit 5, what to do, nothing written.
    stale = fjord(
        data, "config", "set", APP, "-f", str(second), "--reason", "two",
        "--expected-version", "0",
    )  # fmt: skip
    assert stale.returncode == 5, stale.stderr
    assert "is at version 1; this write was based on version 0" in stale.stderr
    assert "run again with --expected-version 1" in stale.stderr
    shown = fjord(data, "config", "show", APP, "-o", "json")
    assert json.loads(shown.stdout)["values"] == {"common": {"env": {"A": "1"}}}

    # Based on the latest: stored as the next version.
    fresh = fjord(
        data, "config", "set", APP, "-f", str(second), "--reason", "two",
        "--expected-version", "1", "-o", "json",
    )  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads(fresh.stdout)["version"] == 2
    history = fjord(data, "config", "history", APP, "-o", "json")
    assert [(v["version"], v["reason"]) for v in json.loads(history.stdout)] == [
        (1, "one"),
        (2, "two"),
    ]
