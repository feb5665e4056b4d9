"""`fjord dev up` / `down`: the README's demo command brings up and removes the local platform."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.flux]


def fjord(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fjord.cli", *args], capture_output=True, text=True, check=check
    )


def test_dev_up_prints_where_everything_is_and_down_removes_it(
    tmp_path: Path, cluster_binaries: Path
) -> None:
    state = ["--state-dir", str(tmp_path)]
    try:
        up = fjord("dev", "up", "-o", "json", *state)
        info = json.loads(up.stdout)
        assert info["running"] is True
        assert info["cluster"]["flux"] is True
        assert info["cluster"]["ready"] is True
        registry = info["registry"]
        assert registry.startswith("http://127.0.0.1:")
        assert httpx2.get(f"{registry}/v2/").status_code == 200
        where = {part["name"]: part["where"] for part in info["parts"]}
        assert where["OCI registry"] == registry
        assert any(h.startswith("export KUBECONFIG=") for h in info["hints"])

        # A second `up` finds everything running and changes nothing.
        again = json.loads(fjord("dev", "up", "-o", "json", *state).stdout)
        assert again["registry"] == registry
        assert again["cluster"]["ports"] == info["cluster"]["ports"]
    finally:
        down = fjord("dev", "down", *state, check=False)
    assert down.returncode == 0
    assert "registry" in down.stderr
    status = fjord("dev", "status", "-o", "json", *state, check=False)
    assert status.returncode == 1
    assert json.loads(status.stdout)["running"] is False
    with pytest.raises(httpx2.TransportError):
        httpx2.get(f"{registry}/v2/", timeout=2)
