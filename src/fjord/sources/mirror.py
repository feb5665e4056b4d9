"""A bare mirror of one Git repository, kept in the control plane's data directory.

Debian's ``git`` does the work. Every fetch is incremental (only new objects cross the wire) and
prunes refs deleted upstream; ``git gc --auto`` afterwards keeps the pack count and loose objects
bounded. A file lock per mirror makes concurrent builds safe: fetching (which writes refs and
packs) holds it exclusively, reading a commit's tree holds it shared.

The credential (a Gitea token) reaches git only through the environment (``GIT_CONFIG_*`` as an
``http.extraHeader``): never in the URL, the mirror's config, the process's arguments or on disk.
Only ``http``/``https`` remotes are allowed, so a repository URL can never make the control plane
read a path on its own host.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

from fjord.sources.errors import (
    CredentialError,
    SourceError,
    UnknownRefError,
    UnreachableError,
    UnsupportedSourceError,
)

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
_SHA = re.compile(r"^[0-9a-f]{7,40}$")
# Tag and branch names fjord accepts: what Gitea allows, minus anything git could read as an option.
_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/+-]{0,199}$")
_TRANSIENT = (
    "could not resolve host",
    "failed to connect",
    "connection refused",
    "connection reset",
    "timed out",
    "operation too slow",
    "the requested url returned error: 50",
    "early eof",
    "unexpected disconnect",
)
_AUTH = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "the requested url returned error: 401",
    "the requested url returned error: 403",
)
_NOT_FOUND = ("not found", "the requested url returned error: 404")


def display_url(url: str) -> str:
    """The URL without any user or password in it, for messages and records."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def check_url(url: str) -> str:
    """A repository URL fjord may fetch: http(s), with a host, no credentials in it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(
            f"repository URL {url!r} is not an http(s) clone URL",
            hint="use the clone URL Gitea shows, e.g. https://gitea.example/ttd/skjema.git",
        )
    if parts.username or parts.password:
        raise SourceError(
            f"repository URL {display_url(url)} carries credentials",
            hint="register the org's read token separately; it is stored encrypted",
        )
    return url


@dataclass(frozen=True)
class Resolved:
    """A ref pinned to a commit; ``tags``: every tag that points at that commit."""

    repository: str
    ref: str
    kind: str  # tag | branch | commit
    commit: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class _Entry:
    mode: str
    kind: str
    sha: str
    path: str


class Mirror:
    """One repository's bare mirror at ``path``; ``token``: the read credential, if any."""

    def __init__(
        self,
        path: Path,
        url: str,
        token: str | None = None,
        *,
        attempts: int = 4,
        backoff: float = 0.5,
        timeout: float = 600.0,
    ) -> None:
        self.path = path
        self.url = check_url(url)
        self.name = display_url(url)
        self._token = token
        self._attempts = attempts
        self._backoff = backoff
        self._timeout = timeout

    # ---- git -------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.path.parent),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/false",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "LC_ALL": "C",
        }
        config = [
            # Only web remotes: never file://, ssh:// or ext:: from a URL someone registered.
            ("protocol.allow", "never"),
            ("protocol.http.allow", "always"),
            ("protocol.https.allow", "always"),
            # A server that stalls is a failure, not a hung build.
            ("http.lowSpeedLimit", "1000"),
            ("http.lowSpeedTime", "30"),
        ]
        if self._token:
            config.append(("http.extraHeader", f"Authorization: token {self._token}"))
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for index, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        return env

    def _git(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(
            ["git", "--git-dir", str(self.path), *args],
            env=self._env(),
            input=input,
            capture_output=True,
            timeout=self._timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise SourceError(
                f"{self.name}: git {args[0]} failed: {_stderr(result)}",
                hint="see the control plane's log; the mirror is rebuilt if it is damaged",
            )
        return result

    @contextlib.contextmanager
    def _locked(self, shared: bool) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ---- fetching --------------------------------------------------------------------------

    def fetch(self) -> None:
        """Bring the mirror up to date with the remote (created on first use)."""
        with self._locked(shared=False):
            if not (self.path / "HEAD").exists():
                self.path.mkdir(parents=True, exist_ok=True)
                self._git("init", "--quiet", "--bare")
            for attempt in range(self._attempts):
                result = self._git(
                    "fetch", "--quiet", "--prune", "--no-auto-gc", "--", self.url,
                    "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*",
                    check=False,
                )  # fmt: skip
                if result.returncode == 0:
                    break
                self._raise_unless_transient(result, last=attempt == self._attempts - 1)
                time.sleep(self._backoff * 2**attempt)
            # Bounded disk: repack when loose objects or packs pile up, prune what is unreachable.
            self._git("gc", "--auto", "--quiet", check=False)

    def _raise_unless_transient(
        self, result: subprocess.CompletedProcess[bytes], *, last: bool
    ) -> None:
        message = _stderr(result)
        lowered = message.lower()
        if any(marker in lowered for marker in _AUTH):
            raise CredentialError(
                f"{self.name}: the server refused the org's credential ({message})",
                hint="set a valid read token for the org (fjord org credential set)",
            )
        if any(marker in lowered for marker in _NOT_FOUND):
            raise UnreachableError(
                f"{self.name}: no such repository, or the org's credential cannot read it",
                hint="check the clone URL and that the org's token may read this repository",
            )
        if last or not any(marker in lowered for marker in _TRANSIENT):
            raise UnreachableError(f"{self.name}: fetching failed: {message}")

    # ---- resolving -------------------------------------------------------------------------

    def _rev(self, name: str) -> str | None:
        result = self._git("rev-parse", "--verify", "--quiet", name, check=False)
        return result.stdout.decode().strip() if result.returncode == 0 else None

    def resolve(self, ref: str) -> Resolved:
        """Pin ``ref`` (a tag, a branch or a commit) to a commit, fetching first if needed.

        A full commit sha that the mirror already has needs no fetch (commits never change);
        tags and branches always fetch, because they move.
        """
        ref = ref.strip()
        if not (_REF.match(ref) and ".." not in ref and not ref.endswith((".lock", "/"))):
            raise UnknownRefError(
                f"{self.name}: {ref!r} is not a tag, branch or commit name",
                hint="give a tag (v1.4.0), a branch (main) or a commit sha",
            )
        is_sha = bool(_SHA.match(ref))
        if not (is_sha and len(ref) == 40 and self._has_commit(ref)):
            self.fetch()
        with self._locked(shared=True):
            for kind, name in (("tag", f"refs/tags/{ref}"), ("branch", f"refs/heads/{ref}")):
                commit = self._rev(f"{name}^{{commit}}")
                if commit:
                    return Resolved(self.name, ref, kind, commit, self._tags_at(commit))
            commit = self._rev(f"{ref}^{{commit}}") if is_sha else None
            if commit:
                return Resolved(self.name, ref, "commit", commit, self._tags_at(commit))
        raise UnknownRefError(
            f"{self.name}: no tag, branch or commit {ref!r}",
            hint="push it first, or check the name (fjord resolves tags, then branches, then shas)",
        )

    def default_branch(self) -> str:
        """The remote's default branch (what ``HEAD`` points at there), e.g. ``main``."""
        for attempt in range(self._attempts):
            result = self._git("ls-remote", "--symref", "--", self.url, "HEAD", check=False)
            if result.returncode == 0:
                break
            self._raise_unless_transient(result, last=attempt == self._attempts - 1)
            time.sleep(self._backoff * 2**attempt)
        for line in result.stdout.decode().splitlines():
            target, _, name = line.partition("\t")
            if name == "HEAD" and target.startswith("ref: refs/heads/"):
                return target.removeprefix("ref: refs/heads/")
        raise UnknownRefError(
            f"{self.name}: the repository has no default branch (is it empty?)",
            hint="push a branch first, or name a ref",
        )

    def has_commit(self, sha: str) -> bool:
        """Whether the mirror holds ``sha`` (a commit) already."""
        with self._locked(shared=True):
            return self._has_commit(sha)

    def _has_commit(self, sha: str) -> bool:
        if not (self.path / "HEAD").exists():
            return False
        return self._git("cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode == 0

    def _tags_at(self, commit: str) -> tuple[str, ...]:
        result = self._git("tag", "--points-at", commit, check=False)
        return tuple(sorted(result.stdout.decode().split()))

    def commits_between(self, old: str, new: str, limit: int = 100) -> list[dict[str, str]]:
        """The commits in ``new`` that are not in ``old`` (newest first): a release diff's range."""
        with self._locked(shared=True):
            result = self._git(
                "log", f"--max-count={limit}", "--format=%H%x00%an%x00%s", f"{old}..{new}",
                check=False,
            )  # fmt: skip
        rows = []
        for line in result.stdout.decode(errors="replace").splitlines():
            sha, author, subject = ([*line.split("\x00"), "", ""])[:3]
            rows.append({"commit": sha, "author": author, "subject": subject})
        return rows

    # ---- reading a commit ------------------------------------------------------------------

    def _tree(self, commit: str) -> list[_Entry]:
        result = self._git("ls-tree", "-r", "-z", "--full-tree", commit)
        entries = []
        for record in result.stdout.split(b"\0"):
            if not record:
                continue
            meta, _, path = record.partition(b"\t")
            mode, kind, sha = meta.decode().split()
            entries.append(_Entry(mode, kind, sha, path.decode(errors="surrogateescape")))
        return entries

    def read(self, commit: str, paths: Sequence[str], ref: str | None = None) -> dict[str, bytes]:
        """The files of ``commit`` at ``paths`` (a file or a folder each), checked for use.

        Refused, naming the repository and ref: a tree with submodules, an LFS pointer or a
        symlink among the files asked for, a path that escapes the repository.
        """
        where = f"{self.name} at {ref or commit[:12]}"
        with self._locked(shared=True):
            entries = self._tree(commit)
            submodules = [e.path for e in entries if e.kind == "commit" or e.path == ".gitmodules"]
            if submodules:
                raise UnsupportedSourceError(
                    f"{where}: uses Git submodules ({', '.join(submodules[:5])})",
                    hint="fjord builds from one repository; vendor the files instead",
                )
            wanted = [_clean(p, where) for p in paths]
            chosen = [e for e in entries if any(_under(e.path, w) for w in wanted)]
            links = [e.path for e in chosen if e.mode == "120000"]
            if links:
                raise UnsupportedSourceError(
                    f"{where}: symbolic links are not supported ({', '.join(links[:5])})",
                    hint="replace them with the files they point at",
                )
            files = self._blobs(chosen)
        pointers = [path for path, data in files.items() if data.startswith(LFS_POINTER)]
        if pointers:
            raise UnsupportedSourceError(
                f"{where}: Git LFS pointers instead of files ({', '.join(sorted(pointers)[:5])})",
                hint="keep fjord.yaml and the chart out of Git LFS",
            )
        return files

    def _blobs(self, entries: Sequence[_Entry]) -> dict[str, bytes]:
        if not entries:
            return {}
        batch = "".join(f"{e.sha}\n" for e in entries).encode()
        output = self._git("cat-file", "--batch", input=batch).stdout
        files: dict[str, bytes] = {}
        offset = 0
        for entry in entries:
            header_end = output.index(b"\n", offset)
            size = int(output[offset:header_end].split()[2])
            start = header_end + 1
            files[entry.path] = output[start : start + size]
            offset = start + size + 1
        return files

    def checkout(
        self, commit: str, directory: Path, paths: Sequence[str], ref: str | None = None
    ) -> dict[str, bytes]:
        """Write ``paths`` of ``commit`` under ``directory`` (a fresh, empty directory)."""
        files = self.read(commit, paths, ref)
        for path, data in files.items():
            target = directory / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return files


def _clean(path: str, where: str) -> str:
    pure = PurePosixPath(path.strip().removeprefix("./"))
    if pure.is_absolute() or ".." in pure.parts:
        raise SourceError(f"{where}: path {path!r} leaves the repository")
    return "" if str(pure) == "." else str(pure)


def _under(path: str, wanted: str) -> bool:
    return not wanted or path == wanted or path.startswith(wanted + "/")


def _stderr(result: subprocess.CompletedProcess[bytes]) -> str:
    text = result.stderr.decode(errors="replace").strip()
    return " ".join(text.splitlines()[-3:]) or f"exit status {result.returncode}"


def mirror_for(root: Path, url: str, token: str | None = None) -> Mirror:
    """The mirror of ``url`` under ``root``: one directory per repository URL."""
    name = display_url(check_url(url))
    parts = urlsplit(name)
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{parts.hostname}_{parts.path}").strip("_")
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return Mirror(root / f"{readable[:80]}-{digest}.git", url, token)
