"""The test session's Gitea: orgs ``ttd`` and ``digdir`` with a read-only token each, and a
helper that pushes an app directory as a fresh private repository (one per test, so tests that
push more commits never see each other's)."""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from fjord.devcluster.gitea import LocalGitea, SeededRepo

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "examples"
ORGS = ("ttd", "digdir")


@dataclass
class SessionGitea:
    server: LocalGitea
    tokens: dict[str, str] = field(default_factory=dict)  # org → read-only token

    @property
    def url(self) -> str:
        return self.server.url

    def push_app(
        self, org: str, source: Path | str, *, name: str | None = None, tag: str | None = "v1.0.0"
    ) -> SeededRepo:
        """A new repository ``org/<name>-<random>`` holding ``source`` (an example's name or a
        directory), on ``main``, with ``tag``."""
        directory = EXAMPLES / source if isinstance(source, str) else source
        repository = f"{org}/{name or directory.name}-{uuid.uuid4().hex[:8]}"
        self.server.create_repo(repository)
        commit = self.server.push_directory(repository, directory, tag=tag)
        return SeededRepo(repository, self.server.clone_url(repository), commit, tag or "")

    def push(self, repo: SeededRepo, source: Path, *, message: str, tag: str | None = None) -> str:
        """The next commit of ``repo``'s main (``source``'s files), and optionally a tag."""
        return self.server.push_directory(
            repo.repository, source, tag=tag, message=message, date="2026-02-01T00:00:00Z"
        )


_shared: SessionGitea | None = None
_lock = threading.Lock()


def shared() -> SessionGitea:
    """The test session's one Gitea, started on first use (the ``gitea`` fixture and helpers
    that register apps share it); :func:`stop_shared` stops it at the session's end."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = start(Path(tempfile.mkdtemp(prefix="fjord-test-gitea-")))
        return _shared


def stop_shared() -> None:
    global _shared
    with _lock:
        if _shared is not None:
            _shared.server.stop()
            shutil.rmtree(_shared.server.state_dir, ignore_errors=True)
            _shared = None


def start(root: Path) -> SessionGitea:
    server = LocalGitea.start(root)
    try:
        for org in ORGS:
            server.create_org(org)
        return SessionGitea(server, {org: server.reader_token(org) for org in ORGS})
    except BaseException:
        server.stop()
        raise


def copy_example(example: str, target: Path) -> Path:
    shutil.copytree(EXAMPLES / example, target)
    return target
