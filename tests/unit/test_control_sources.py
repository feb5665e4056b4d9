"""Source revisions: git HEAD in a work tree, a content hash elsewhere."""

from __future__ import annotations

import subprocess
from pathlib import Path

from fjord.control.sources import source_revision


def test_a_plain_directory_is_identified_by_its_content(tmp_path: Path) -> None:
    (tmp_path / "fjord.yaml").write_text("app: a\n")
    first = source_revision(tmp_path)
    assert first.startswith("sha256:")
    assert source_revision(tmp_path) == first
    (tmp_path / "fjord.yaml").write_text("app: b\n")
    assert source_revision(tmp_path) != first


def test_a_git_work_tree_is_identified_by_branch_and_commit(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    git("init", "-q", "-b", "main")
    (tmp_path / "fjord.yaml").write_text("app: a\n")
    git("add", "fjord.yaml")
    git("-c", "user.name=t", "-c", "user.email=t@example.test", "commit", "-qm", "one")
    assert source_revision(tmp_path) == f"main@sha1:{git('rev-parse', 'HEAD')}"
