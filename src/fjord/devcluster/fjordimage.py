"""fjord's own container image: one image for the control plane and every operator.

Built on this machine without a container engine and without any registry download, in three
layers, lowest first:

1. ``base``: a Debian bookworm rootfs with ``python3``, ``git``, ``libstdc++6`` and
   ``ca-certificates`` (:func:`appimages.base_layer`: ``mmdebstrap`` from the apt mirror, cached).
2. ``libraries``: fjord's dependencies, installed by pip from PyPI (through pip's cache) into the
   image's virtualenv ``/opt/fjord``, pinned by ``deploy/image/requirements.txt`` (the full
   closure, so nothing is resolved at build time; ``lock`` regenerates it). Built once per lock.
3. ``fjord``: the fjord wheel (built from this checkout, once per source hash), installed without
   dependencies into the same virtualenv, and the ``fjord`` entrypoint.

Same inputs give the same digest: pip installs wheels only (``--only-binary``) for Debian's
Python and glibc, without bytecode, the paths and shebangs of the build host are removed, and
every layer is a sorted tar with mtime 0 (:func:`images.layer`; ``SOURCE_DATE_EPOCH`` for the
wheel). The image runs as ``nobody`` with a read-only root: state goes to ``/var/lib/fjord`` and
``/tmp``, which the chart mounts as volumes.

``python -m fjord.devcluster.fjordimage build`` writes the image as an OCI archive, and pushes and
signs it (Sigstore bundle with the release key) when given a registry and a key.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from fjord.artifact.oci import Image
from fjord.artifact.signing import load_private_key
from fjord.devcluster import appimages
from fjord.devcluster.binaries import cache_root
from fjord.devcluster.images import (
    NOBODY,
    Entry,
    ImageBuildError,
    ImageConfig,
    Layer,
    build_image,
    layer,
    oci_archive,
)
from fjord.stores.locations import open_location
from fjord.stores.signatures import Signer, sign

REPO_ROOT = Path(__file__).resolve().parents[3]
LOCK = REPO_ROOT / "deploy" / "image" / "requirements.txt"
VENV = "opt/fjord"
SITE = f"{VENV}/lib/python3.11/site-packages"
DATA_DIR = "var/lib/fjord"
# Debian bookworm: CPython 3.11, glibc 2.36. pip takes the platform tags literally, so every
# manylinux tag the image's glibc satisfies is listed (with the legacy aliases).
_PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
PIP_TARGET = (
    "--only-binary=:all:",
    *(f"--platform={tag}" for tag in _PLATFORMS),
    "--python-version=3.11",
    "--implementation=cp",
    "--abi=cp311",
)
IMAGE_NAME = "fjord"
# What fjord runs besides Python: git (the control plane's bare mirrors of apps' repositories),
# libstdc++ (greenlet, SQLAlchemy's asyncio bridge), the CA bundle (registries, Gitea, Digdir).
BASE_PACKAGES = ("python3", "git", "libstdc++6", "ca-certificates")
_LINK_FROM_BYTES = 1024 * 1024  # small duplicates (empty __init__.py) stay files
ENTRYPOINT = f"/{VENV}/bin/fjord"
_SCRIPT = f"""#!/{VENV}/bin/python
import sys

from fjord.cli.main import app

sys.exit(app())
"""
_PYVENV = "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n"


def version() -> str:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return str(project["version"])


# ---- inputs ------------------------------------------------------------------------------------


def _source_files() -> Iterator[Path]:
    yield REPO_ROOT / "pyproject.toml"
    yield REPO_ROOT / "README.md"  # the wheel's metadata carries it
    for path in sorted((REPO_ROOT / "src" / "fjord").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            yield path


def source_hash() -> str:
    """What the fjord layer depends on: every file the wheel is built from."""
    digest = hashlib.sha256()
    for path in _source_files():
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def _pip(*args: str, cwd: Path | None = None) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "0", "PYTHONHASHSEED": "0"}
    env.pop("PIP_REQUIRE_VIRTUALENV", None)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )
    if done.returncode != 0:
        raise ImageBuildError(
            f"pip {args[0]} failed: {done.stderr.strip()[-2000:]}",
            "check access to PyPI (pip's cache serves what was downloaded before)",
        )


def _publish(scratch: Path, directory: Path) -> None:
    """Move a finished build into its cache directory (another build may have won the race)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        scratch.rename(directory)
    except OSError:
        if not directory.is_dir():
            raise


def wheel() -> Path:
    """The fjord wheel of this checkout, built once per source hash."""
    directory = cache_root() / "images" / f"fjord-wheel-{source_hash()}"
    found = sorted(directory.glob("fjord-*.whl"))
    if found:
        return found[0]
    directory.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=directory.parent, prefix=".wheel-"))
    _pip("wheel", "--no-deps", "--wheel-dir", str(scratch), str(REPO_ROOT))
    _publish(scratch, directory)
    return sorted(directory.glob("fjord-*.whl"))[0]


def _lock_hash() -> str:
    recipe = LOCK.read_bytes() + " ".join(PIP_TARGET).encode()
    return hashlib.sha256(recipe).hexdigest()[:16]


def _install(target: Path, *requirements: str) -> None:
    _pip(
        "install",
        "--no-deps",
        "--no-compile",
        "--no-warn-script-location",
        "--target",
        str(target),
        *PIP_TARGET,
        *requirements,
    )
    _strip_host_traces(target)


def _strip_host_traces(target: Path) -> None:
    """Remove what names the build host: the scripts pip wrote (their shebang is this Python),
    their lines in RECORD, and the wheel's local path in ``direct_url.json``."""
    shutil.rmtree(target / "bin", ignore_errors=True)
    for record in target.glob("*.dist-info/RECORD"):
        lines = record.read_text().splitlines()
        record.write_text("".join(f"{line}\n" for line in lines if not line.startswith("..")))
    for direct in target.glob("*.dist-info/direct_url.json"):
        direct.unlink()
        record = direct.parent / "RECORD"
        lines = record.read_text().splitlines()
        record.write_text("".join(f"{line}\n" for line in lines if "direct_url.json" not in line))


def libraries_dir() -> Path:
    """fjord's dependencies as pip installs them for the image, once per lock."""
    if not LOCK.is_file():
        raise ImageBuildError(
            f"{LOCK} is missing", "run python -m fjord.devcluster.fjordimage lock"
        )
    directory = cache_root() / "images" / f"fjord-libraries-{_lock_hash()}"
    if directory.is_dir():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=directory.parent, prefix=".libraries-"))
    _install(scratch, "--requirement", str(LOCK))
    _publish(scratch, directory)
    return directory


# ---- layers ------------------------------------------------------------------------------------


def _tree(root: Path, prefix: str) -> Iterator[Entry]:
    """Every file under ``root``; identical files in one directory (a wheel cannot hold the
    symlinks of a shared library's names, so ``libhelm_c.so``, ``.so.0`` and ``.so.0.2.2`` come
    as three copies) become links to the one with the longest name."""
    seen: dict[tuple[Path, str], str] = {}
    paths = sorted(root.rglob("*"), key=lambda p: (str(p.parent), -len(p.name), p.name))
    for path in paths:
        name = f"{prefix}/{path.relative_to(root)}"
        if path.is_symlink():
            yield Entry(name, link=os.readlink(path))
        elif path.is_dir():
            yield Entry(name, mode=0o755)
        else:
            data = path.read_bytes()
            key = (path.parent, hashlib.sha256(data).hexdigest())
            if key in seen and len(data) > _LINK_FROM_BYTES:
                yield Entry(name, link=seen[key])
                continue
            seen.setdefault(key, path.name)
            executable = path.stat().st_mode & 0o111
            yield Entry(name, data, mode=0o755 if executable else 0o644)


def libraries_layer() -> Layer:
    return layer(_tree(libraries_dir(), SITE))


def fjord_layer() -> Layer:
    """The fjord package in the virtualenv, its entrypoint and its data directory."""
    with tempfile.TemporaryDirectory() as scratch:
        _install(Path(scratch), str(wheel()))
        entries = list(_tree(Path(scratch), SITE))
    entries += [
        Entry(f"{VENV}/pyvenv.cfg", _PYVENV.encode()),
        Entry(f"{VENV}/bin/python", link="/usr/bin/python3"),
        Entry(f"{VENV}/bin/python3", link="python"),
        Entry(ENTRYPOINT.lstrip("/"), _SCRIPT.encode(), mode=0o755),
        Entry(DATA_DIR, mode=0o700, uid=NOBODY, gid=NOBODY),
    ]
    return layer(entries)


def fjord_image() -> Image:
    """The image; the same checkout, lock and base give the same digest."""
    return build_image(
        [appimages.base_layer(BASE_PACKAGES), libraries_layer(), fjord_layer()],
        ImageConfig(
            entrypoint=(ENTRYPOINT,),
            env=(
                f"PATH=/{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "PYTHONDONTWRITEBYTECODE=1",
                "PYTHONUNBUFFERED=1",
                f"FJORD_DATA_DIR=/{DATA_DIR}",
                "HOME=/tmp",
            ),
            workdir=f"/{DATA_DIR}",
            ports=(8650, 8080, 9090),
            labels={
                "org.opencontainers.image.title": IMAGE_NAME,
                "org.opencontainers.image.version": version(),
                "org.opencontainers.image.source": "https://github.com/fjord-dev/fjord",
            },
        ),
    )


@dataclass(frozen=True)
class Size:
    compressed: int  # what a node pulls: config and gzip layers
    uncompressed: int  # what it unpacks


def size(image: Image) -> Size:
    layers = image.document["layers"]
    return Size(
        compressed=sum(int(d["size"]) for d in image.descriptors()),
        uncompressed=sum(len(gzip.decompress(image.blobs[d["digest"]])) for d in layers),
    )


# ---- the lock ----------------------------------------------------------------------------------


def _constraints() -> str:
    """The versions of this environment: the lock pins what fjord is tested with."""
    pins = set()
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() != "fjord":
            pins.add(f"{name}=={dist.version}")
    return "".join(f"{pin}\n" for pin in sorted(pins, key=str.lower))


def lock() -> str:
    """The full closure of fjord's dependencies for the image, resolved by pip (as wheels for
    the image's Python and glibc), pinned to this environment's versions where it has them."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    with tempfile.TemporaryDirectory() as scratch:
        constraints, report = Path(scratch) / "constraints.txt", Path(scratch) / "report.json"
        constraints.write_text(_constraints())
        _pip(
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            "--constraint",
            str(constraints),
            "--target",
            str(Path(scratch) / "unused"),
            *PIP_TARGET,
            *project["dependencies"],
        )
        resolved = json.loads(report.read_text())["install"]
    pins = sorted(
        (f"{item['metadata']['name']}=={item['metadata']['version']}" for item in resolved),
        key=str.lower,
    )
    header = (
        "# fjord's runtime dependencies in its image, the full closure (pip installs them with\n"
        "# --no-deps). Regenerate: python -m fjord.devcluster.fjordimage lock\n"
    )
    return header + "".join(f"{pin}\n" for pin in pins)


# ---- the command -------------------------------------------------------------------------------

cli = typer.Typer(help="Build fjord's container image (no engine, no registry download).")


def _report(image: Image, seconds: float) -> dict[str, object]:
    measured = size(image)
    return {
        "digest": image.digest,
        "version": version(),
        "compressed_bytes": measured.compressed,
        "uncompressed_bytes": measured.uncompressed,
        "build_seconds": round(seconds, 2),
    }


async def _push_and_sign(image: Image, push: str, signer: Signer | None) -> dict[str, object]:
    location_url, _, tag = push.rpartition(":")
    if not location_url or "/" in tag:
        location_url, tag = push, version()
    location = open_location(location_url)
    repository = location.repository(IMAGE_NAME)
    async with location.store as store:
        digest = await store.push(repository, image, tag=tag)
        signed = None
        if signer is not None:
            result = await sign(store, repository, digest, signer, manifest=image.manifest)
            signed = result.bundle
    return {"repository": repository, "tag": tag, "signature": signed}


def _signer(key: Path | None) -> Signer | None:
    """The release key (a cosign PEM; its password in ``$COSIGN_PASSWORD``)."""
    if key is None:
        return None
    password = os.environ.get("COSIGN_PASSWORD")
    return Signer(key=load_private_key(key.read_bytes(), password.encode() if password else None))


@cli.command("build")
def build_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write an OCI archive here.")
    ] = None,
    push: Annotated[
        str | None,
        typer.Option(help="Push to oci://host/prefix[:tag] (repository fjord, tag the version)."),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(help="Sign the pushed image with this cosign key ($COSIGN_PASSWORD)."),
    ] = None,
) -> None:
    """Build the image (cached parts are reused) and print its digest, size and build time."""
    if key is not None and push is None:
        typer.echo("error: --key signs the pushed image; give --push too", err=True)
        raise typer.Exit(2)
    started = time.monotonic()
    try:
        image = fjord_image()
    except ImageBuildError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    report = _report(image, time.monotonic() - started)
    if output is not None:
        output.write_bytes(oci_archive(image, f"fjord.local/{IMAGE_NAME}:{version()}"))
        report["archive"] = str(output)
    if push is not None:
        report.update(asyncio.run(_push_and_sign(image, push, _signer(key))))
    typer.echo(json.dumps(report, indent=2))


@cli.command("lock")
def lock_command() -> None:
    """Rewrite deploy/image/requirements.txt from pyproject.toml and this environment."""
    try:
        locked = lock()
    except ImageBuildError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    LOCK.write_text(locked)
    typer.echo(f"wrote {LOCK}")


if __name__ == "__main__":
    cli()
