"""The whole local platform, once per session, brought up by the README's own command.

``fjord dev up`` starts two orgs' clusters (real Kubernetes + Flux + fjord's operators), the
registries, PostgreSQL, Redis, the Maskinporten emulator and the control plane, and deploys the
sample apps; ``fjord dev down`` at the end must leave nothing running.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from e2e_support import Platform, fjord_cli

from fjord.api.client import FjordClient
from fjord.devcluster.platform import PlatformState


def _leftovers(root: Path) -> list[str]:
    """Processes whose command line still mentions the platform's directory."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(root) in cmdline:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


@pytest.fixture(scope="session")
def platform(
    tmp_path_factory: pytest.TempPathFactory, cluster_binaries: Path
) -> Iterator[Platform]:
    state_dir = tmp_path_factory.mktemp("platform")
    up = fjord_cli("dev", "up", "--state-dir", str(state_dir), "-o", "json")
    root = state_dir / "platform"
    try:
        assert up.returncode == 0, up.stderr[-4000:]
        info = json.loads(up.stdout)
        state = PlatformState.load(root)
        assert state is not None
        yield Platform(root, info, state)
    finally:
        down = fjord_cli("dev", "down", "--state-dir", str(state_dir))
        assert down.returncode == 0, down.stderr
        assert not root.exists()
        assert _leftovers(root) == []


@pytest.fixture
async def admin(platform: Platform) -> AsyncIterator[FjordClient]:
    async with platform.api() as client:
        yield client
