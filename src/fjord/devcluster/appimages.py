"""The sample apps' container images: a Debian rootfs, their Python libraries and the service.

Three layers, lowest first:

1. ``base``: Debian bookworm's ``essential`` variant with ``python3``, made by ``mmdebstrap``
   from the apt mirror (no container registry involved). Built once per recipe and cached
   under ``$FJORD_CACHE_DIR/images/base-…-<hash>/`` (about 80 s, ~45 MB gzipped).
2. ``libraries``: the distributions the service imports (fjord's token client needs httpx2,
   cryptography, PyJWT, jwcrypto and pydantic; psycopg and redis for the backing services),
   copied from the environment fjord runs in into ``/usr/local/lib/python3.11/dist-packages``.
3. ``app``: ``examples/sample-service/server.py`` and fjord's ``maskinporten`` package in
   ``/app``.

Every layer is packed deterministically, so the same inputs give the same image digest. The
image runs as ``nobody`` and writes nothing (Pod Security ``restricted``, read-only root).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fjord.artifact.digest import sha256_digest
from fjord.artifact.oci import Image
from fjord.artifact.tarball import gzip_deterministic
from fjord.devcluster.binaries import cache_root
from fjord.devcluster.images import Entry, ImageBuildError, ImageConfig, Layer, build_image, layer

REPO_ROOT = Path(__file__).resolve().parents[3]
SERVICE = REPO_ROOT / "examples" / "sample-service" / "server.py"
FJORD_SOURCE = Path(__file__).resolve().parents[1]
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3",)
PYTHON_SITE = "usr/local/lib/python3.11/dist-packages"  # on Debian bookworm's sys.path
# async-timeout: redis needs it on Python < 3.11.3 (bookworm has 3.11.2), fjord's venv may not.
LIBRARIES = (
    "httpx2",
    "cryptography",
    "PyJWT",
    "jwcrypto",
    "pydantic",
    "psycopg",
    "redis",
    "async-timeout",
)
# fjord modules the service imports (the token client and what it needs), nothing more.
FJORD_MODULES = ("__init__.py", "errors.py", "retry.py", "maskinporten")
_SKIPPED_FJORD = ("emulator",)  # the emulator needs FastAPI; apps never load it


def _mmdebstrap_args(output: Path, packages: tuple[str, ...] = BASE_PACKAGES) -> list[str]:
    return [
        "mmdebstrap",
        "--variant=essential",
        f"--include={','.join(packages)}",
        # Documentation and translations are of no use in an app image.
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        BASE_SUITE,
        str(output),
    ]


def _base_dir(packages: tuple[str, ...]) -> Path:
    recipe = " ".join(_mmdebstrap_args(Path("OUT"), packages)).encode()
    name = f"base-{BASE_SUITE}-{'-'.join(packages)}-{hashlib.sha256(recipe).hexdigest()[:12]}"
    return cache_root() / "images" / name


def base_layer(packages: tuple[str, ...] = BASE_PACKAGES) -> Layer:
    """The Debian rootfs layer with ``packages``, built once per recipe, then read from the
    cache (fjord's own image asks for more than the sample apps need)."""
    directory = _base_dir(packages)
    blob, diff_id = directory / "layer.tar.gz", directory / "diff_id"
    if not (blob.is_file() and diff_id.is_file()):
        _build_base(directory, packages)
    return Layer(blob.read_bytes(), diff_id.read_text().strip())


def _build_base(directory: Path, packages: tuple[str, ...]) -> None:
    if shutil.which("mmdebstrap") is None:
        raise ImageBuildError(
            "mmdebstrap is not installed; it builds the sample apps' Debian base image",
            "run scripts/setup (it installs Debian's mmdebstrap)",
        )
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        tar = Path(scratch) / "rootfs.tar"
        env = {**os.environ, "SOURCE_DATE_EPOCH": "0"}  # mmdebstrap clamps times to it
        built = subprocess.run(
            _mmdebstrap_args(tar, packages), capture_output=True, text=True, env=env, check=False
        )
        if built.returncode != 0:
            raise ImageBuildError(
                f"mmdebstrap failed: {built.stderr.strip()[-1500:]}",
                "check access to the Debian mirror (apt-get update)",
            )
        data = tar.read_bytes()
        (Path(scratch) / "layer.tar.gz").write_bytes(gzip_deterministic(data))
        (Path(scratch) / "diff_id").write_text(sha256_digest(data))
        (Path(scratch) / "layer.tar.gz").rename(directory / "layer.tar.gz")
        (Path(scratch) / "diff_id").rename(directory / "diff_id")


def _requirement_names(dist: importlib.metadata.Distribution) -> Iterator[str]:
    for requirement in dist.requires or []:
        if "extra ==" in requirement:
            continue  # optional features the service does not use
        match = re.match(r"[A-Za-z0-9._-]+", requirement)
        if match:
            yield match.group(0)


def _distributions(names: Iterable[str]) -> list[importlib.metadata.Distribution]:
    """The named distributions and everything they require that is installed, by name."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = list(names)
    while pending:
        name = pending.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in found:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a requirement for another platform or Python version
        found[key] = dist
        pending.extend(_requirement_names(dist))
    if "psycopg" in found:  # psycopg's C implementation is an extra; the image needs it
        found["psycopg-binary"] = importlib.metadata.distribution("psycopg-binary")
    return [found[k] for k in sorted(found)]


def libraries_layer() -> Layer:
    """The service's Python libraries, copied from the environment fjord runs in."""
    if sys.version_info[:2] != (3, 11):
        # Compiled extensions (cryptography, pydantic-core, psycopg) must match the image's
        # Python: Debian bookworm's 3.11.
        raise ImageBuildError(
            f"the sample images copy fjord's libraries into Debian bookworm (Python 3.11), but "
            f"fjord runs on Python {sys.version_info[0]}.{sys.version_info[1]}",
            "create fjord's virtualenv with Python 3.11",
        )
    entries = []
    for dist in _distributions(LIBRARIES):
        for file in dist.files or []:
            relative = str(file)
            if relative.startswith("..") or "__pycache__" in relative:
                continue
            source = Path(str(dist.locate_file(file)))
            if source.is_file():
                entries.append(Entry(f"{PYTHON_SITE}/{relative}", source.read_bytes()))
    return layer(entries)


def _fjord_files() -> Iterator[tuple[str, bytes]]:
    for name in FJORD_MODULES:
        path = FJORD_SOURCE / name
        if path.is_file():
            yield f"fjord/{name}", path.read_bytes()
            continue
        for file in sorted(path.rglob("*.py")):
            relative = file.relative_to(FJORD_SOURCE)
            if not any(part in _SKIPPED_FJORD for part in relative.parts):
                yield f"fjord/{relative}", file.read_bytes()


def app_layer(service: Path = SERVICE) -> Layer:
    entries = [Entry("app/server.py", service.read_bytes())]
    entries += [Entry(f"app/{path}", data) for path, data in _fjord_files()]
    return layer(entries)


@dataclass(frozen=True)
class SampleApp:
    """What differs between the sample apps' images: name, version, port, greeting."""

    name: str
    version: str
    port: int
    greeting: str = "hello"


def sample_image(app: SampleApp, service: Path = SERVICE) -> Image:
    """The image of one sample app; the same inputs give the same digest."""
    return build_image(
        [base_layer(), libraries_layer(), app_layer(service)],
        ImageConfig(
            entrypoint=("/usr/bin/python3", "-B", "/app/server.py"),
            env=(
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "PYTHONPATH=/app",
                "PYTHONDONTWRITEBYTECODE=1",
                "PYTHONUNBUFFERED=1",
                f"PORT={app.port}",
                f"APP_NAME={app.name}",
                f"APP_VERSION={app.version}",
                f"GREETING={app.greeting}",
            ),
            workdir="/app",
            ports=(app.port,),
            labels={
                "org.opencontainers.image.title": app.name,
                "org.opencontainers.image.version": app.version,
                "dev.fjord.python": f"{sys.version_info[0]}.{sys.version_info[1]}",
            },
        ),
    )
