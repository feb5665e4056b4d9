"""Deterministic gzip tarballs in the layout ``flux push artifact`` produces.

Same files in, same bytes out, on every run and machine:

* entries are sorted in the order a depth-first, name-sorted directory walk visits them (the
  order Go's ``filepath.Walk`` uses in ``flux push artifact``), starting with the root ``.``;
* every directory on the way to a file gets its own entry; only regular files and directories
  are ever written (no links, devices or FIFOs);
* headers are normalised: uid/gid 0, empty user and group names, mtime 0, mode 0644 for files
  and 0755 for directories, PAX format (so long and non-ASCII names need no GNU extensions);
* the gzip member is written by hand: header with mtime 0, no file name, XFL 2, OS 255
  ("unknown"), so no header byte depends on the host.

Assumption: the deflate stream comes from zlib at level 9 with the default window, memory level
and strategy. Stock zlib (1.2.x, 1.3.x) has produced identical streams for these settings for
decades, but forks such as zlib-ng or Intel's/Cloudflare's zlib compress differently and would
change artifact digests. ``tests/unit/test_artifact_tarball.py`` pins a golden digest so a
divergent zlib shows up as a test failure rather than as silently different releases.
"""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from collections.abc import Mapping

from fjord.artifact.errors import ArtifactError

FILE_MODE = 0o644
DIR_MODE = 0o755
COMPRESSION_LEVEL = 9

# Fixed gzip header (RFC 1952): magic, CM=deflate, no flags, MTIME=0, XFL=2 (max compression),
# OS=255 (unknown).
_GZIP_HEADER = b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x02\xff"


def check_path(path: str) -> tuple[str, ...]:
    """Split a relative, ``/``-separated file path into parts, rejecting anything unsafe.

    Flux's extractor rejects ``..``, absolute paths and backslashes; fjord refuses to produce
    them in the first place, and also refuses empty or ``.`` components so that every path has
    exactly one spelling (otherwise two spellings of one file would give two digests).
    """
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise ArtifactError(f"invalid artifact path {path!r}: must be relative and use '/'")
    parts = tuple(path.split("/"))
    if any(part in ("", ".", "..") for part in parts):
        raise ArtifactError(f"invalid artifact path {path!r}: empty, '.' or '..' component")
    return parts


def _entries(files: Mapping[str, bytes]) -> list[tuple[tuple[str, ...], bytes | None]]:
    """All tar entries, as (path parts, content or None for a directory), in walk order."""
    entries: dict[tuple[str, ...], bytes | None] = {(): None}
    for path, content in files.items():
        parts = check_path(path)
        for depth in range(1, len(parts)):
            if entries.get(parts[:depth]) is not None:
                raise ArtifactError(f"artifact path {path!r} lies under a file")
            entries[parts[:depth]] = None
        if parts in entries:
            raise ArtifactError(f"artifact path {path!r} is both a file and a directory")
        entries[parts] = bytes(content)
    # Sorting tuples of components gives the depth-first walk order: ("a",) < ("a", "b")
    # < ("a-b",), whereas sorting joined strings would put "a-b" before "a/b".
    return sorted(entries.items(), key=lambda item: item[0])


def _tar(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for parts, content in _entries(files):
            info = tarfile.TarInfo("/".join(parts) if parts else ".")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if content is None:
                info.type = tarfile.DIRTYPE
                info.mode = DIR_MODE
                tar.addfile(info)
            else:
                info.type = tarfile.REGTYPE
                info.mode = FILE_MODE
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def gzip_deterministic(data: bytes) -> bytes:
    """A single gzip member over ``data`` whose header carries no time, name or host."""
    compressor = zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS, 8, 0)
    body = compressor.compress(data) + compressor.flush()
    trailer = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return _GZIP_HEADER + body + trailer


def pack(files: Mapping[str, bytes]) -> tuple[bytes, bytes]:
    """Pack ``{relative_path: content}`` into (gzip tarball, uncompressed tar)."""
    tar = _tar(files)
    return gzip_deterministic(tar), tar


def unpack(tarball: bytes) -> dict[str, bytes]:
    """Read the regular files of a gzip tarball back as ``{relative_path: content}``.

    Directory entries are dropped; anything that is neither a file nor a directory, and any
    unsafe name, is an error, so a tampered or foreign layer cannot smuggle paths out.
    """
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
            for member in tar:
                name = member.name.removeprefix("./").rstrip("/")
                if member.isdir():
                    if name not in (".", ""):
                        check_path(name)
                    continue
                if not member.isreg():
                    raise ArtifactError(f"artifact entry {member.name!r} is not a regular file")
                check_path(name)
                extracted = tar.extractfile(member)
                if extracted is None:  # pragma: no cover - regular files always extract
                    raise ArtifactError(f"cannot read artifact entry {member.name!r}")
                files[name] = extracted.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ArtifactError(f"artifact layer is not a readable gzip tarball: {exc}") from exc
    return files
