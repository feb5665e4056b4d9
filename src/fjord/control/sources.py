"""The revision and source URL of an app's source directory, as Flux's annotations want them.

Revision: in a git work tree ``<branch>@sha1:<HEAD commit>`` (``HEAD`` when detached); otherwise
``sha256:<hash of the directory's files>``: names and contents, in sorted order, so the same tree
always gives the same revision. Source: the git remote ``origin`` without credentials, else
``local``. Neither depends on where the tree is checked out, its mtimes or its file modes: both
go into the release's manifest, so they are part of its digest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import urllib.parse
from pathlib import Path

_SKIP = {".git", "__pycache__", ".venv", "node_modules"}
LOCAL_SOURCE = "local"


def _git(directory: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def content_hash(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if _SKIP & set(relative.parts) or not path.is_file() or path.is_symlink():
            continue
        with path.open("rb") as stream:  # in chunks: a huge file is hashed, not held
            size = os.fstat(stream.fileno()).st_size
            digest.update(f"{relative.as_posix()}\0{size}\0".encode())
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def source_revision(directory: Path) -> str:
    if _git(directory, "rev-parse", "--is-inside-work-tree") == "true":
        commit = _git(directory, "rev-parse", "HEAD")
        if commit:
            branch = _git(directory, "rev-parse", "--abbrev-ref", "HEAD") or "HEAD"
            return f"{branch}@sha1:{commit}"
    return content_hash(directory)


def _without_credentials(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return url


def source_url(directory: Path) -> str:
    """The source annotation for a build of ``directory``: never its path on this machine."""
    if _git(directory, "rev-parse", "--is-inside-work-tree") == "true":
        url = _git(directory, "remote", "get-url", "origin")
        if url:
            return _without_credentials(url)
    return LOCAL_SOURCE
