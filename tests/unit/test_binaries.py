"""The binary builder's cache key and its messages when something it needs is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fjord.devcluster import binaries
from fjord.devcluster.binaries import BuildError


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    copy = tmp_path / "tools"
    shutil.copytree(binaries.TOOLS_DIR, copy)
    return copy


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FJORD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FJORD_BIN_DIR", raising=False)
    return tmp_path / "cache"


def test_the_cache_directory_is_versioned_by_the_go_modules(tools: Path, empty_cache: Path) -> None:
    first = binaries.bin_dir(tools)
    assert first == binaries.bin_dir(tools)  # stable
    assert first.is_relative_to(empty_cache)
    assert "k8s-v1.36.3" in first.name
    assert "etcd-v3.6.10" in first.name
    sums = tools / "etcd" / "go.sum"
    sums.write_text(sums.read_text() + "\n")
    assert binaries.bin_dir(tools) != first  # any module change builds into a new directory


def test_locate_says_how_to_build(empty_cache: Path) -> None:
    with pytest.raises(BuildError, match="make tools"):
        binaries.locate()


def test_no_go_toolchain_is_explained(
    tools: Path, empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BuildError, match="no Go toolchain on PATH"):
        binaries.build(tools)


def test_an_unreachable_module_proxy_is_explained(
    tools: Path, empty_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOPROXY", "off")
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "empty-modcache"))
    monkeypatch.setattr(binaries, "COLD_BUILD_FREE_BYTES", 0)
    with pytest.raises(BuildError) as failed:
        binaries.build(tools)
    assert "module proxy" in str(failed.value)
    assert "GOPROXY" in str(failed.value)


def test_too_little_disk_is_explained(
    tools: Path, empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ask for more than any disk has: the real free-space check must refuse, naming the fix.
    monkeypatch.setattr(binaries, "COLD_BUILD_FREE_BYTES", 1 << 60)
    with pytest.raises(BuildError, match="GiB free") as failed:
        binaries.build(tools)
    assert "FJORD_CACHE_DIR" in str(failed.value)


def test_each_extra_group_has_a_directory_of_its_own(tmp_path: Path) -> None:
    cluster = binaries.bin_dir()
    dirs = {name: binaries.group_dir(name) for name in binaries.GROUPS}
    assert len(set(dirs.values())) == len(dirs)  # no two groups share a directory
    assert cluster not in dirs.values()
    assert dirs["gitea"].name.startswith(f"gitea-{binaries.GITEA_VERSION}_go")


def test_an_unknown_group_is_named_with_the_known_ones() -> None:
    with pytest.raises(BuildError, match="unknown binary group 'nope'; known: bench, gitea"):
        binaries.group_dir("nope")


def test_a_missing_group_says_how_to_build_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FJORD_CACHE_DIR", str(tmp_path))
    with pytest.raises(BuildError, match="binaries build gitea"):
        binaries.locate_group("gitea")
