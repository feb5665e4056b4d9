"""The runners' state files: atomic, owner-only, and a broken one is named, not ignored."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from fjord.devcluster.statefile import read_state, remove_state, write_state
from fjord.errors import FjordError


def test_round_trip_is_owner_only_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "deeper" / "redis.json"
    write_state(path, {"port": 1234, "password": "secret"})
    write_state(path, {"port": 4321, "password": "other"})
    assert read_state(path) == {"port": 4321, "password": "other"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["redis.json"]


def test_absent_means_nothing_runs(tmp_path: Path) -> None:
    assert read_state(tmp_path / "state.json") is None
    remove_state(tmp_path / "state.json")  # removing twice is fine
    write_state(tmp_path / "state.json", {})
    remove_state(tmp_path / "state.json")
    assert read_state(tmp_path / "state.json") is None


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_a_broken_file_is_named_with_what_to_do(tmp_path: Path, content: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(FjordError) as raised:
        read_state(path)
    assert str(path) in str(raised.value)
    assert "remove the file" in str(raised.value)
