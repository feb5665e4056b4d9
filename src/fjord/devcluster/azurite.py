"""Azurite (the Azure Storage emulator) for tests and the demo, blob service only.

:func:`ensure_installed` installs the npm package ``azurite@3.35.0`` (the last release that
declares support for Node 20) into ``~/.cache/fjord/node/azurite-3.35.0/`` (under
``$FJORD_CACHE_DIR`` when set), outside the repository. The install goes to a temporary sibling
directory that is renamed into place once npm succeeds, under a file lock, so concurrent callers
and interrupted installs never see a half-installed tree; an existing install is reused.

:class:`Azurite` runs ``azurite-blob`` on 127.0.0.1 with a free port and its own data directory,
with ``--skipApiVersionCheck --loose`` because the Azure SDK speaks a newer API version than the
emulator knows. Readiness is polled; the pid and port go into ``azurite.json`` in the state
directory so :meth:`Azurite.load` can stop it from another process.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Self

import httpx2

from fjord.devcluster import processes
from fjord.devcluster.processes import ComponentFailed, ProcessRecord
from fjord.devcluster.statefile import read_state, remove_state, write_state

AZURITE_VERSION = "3.35.0"
STATE_FILE = "azurite.json"
ACCOUNT_NAME = "devstoreaccount1"
# Azurite's fixed, publicly documented development key (not a secret).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def cache_dir() -> Path:
    """fjord's cache root: ``$FJORD_CACHE_DIR`` or ``~/.cache/fjord``."""
    configured = os.environ.get("FJORD_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "fjord"


def install_dir(version: str = AZURITE_VERSION) -> Path:
    return cache_dir() / "node" / f"azurite-{version}"


def _blob_binary(root: Path) -> Path:
    return root / "node_modules" / ".bin" / "azurite-blob"


def ensure_installed(version: str = AZURITE_VERSION) -> Path:
    """Install Azurite with npm unless it is already there; return the ``azurite-blob`` path."""
    target = install_dir(version)
    binary = _blob_binary(target)
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise ComponentFailed("npm not found", hint="install Node.js 20 and npm")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".azurite-{version}.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if binary.exists():  # another process finished the install while we waited
            return binary
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".azurite-{version}-"))
        try:
            result = subprocess.run(
                [
                    npm,
                    "install",
                    "--prefix",
                    str(staging),
                    "--no-audit",
                    "--no-fund",
                    "--no-save",
                    "--loglevel=error",
                    f"azurite@{version}",
                ],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if result.returncode != 0 or not _blob_binary(staging).exists():
                raise ComponentFailed(
                    f"npm install azurite@{version} failed:\n{result.stderr[-3000:]}",
                    hint="check network access to the npm registry",
                )
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return binary


def _blob_service_up(url: str) -> bool:
    try:
        # Any HTTP answer (Azurite replies 400 to a bare GET) proves the listener is serving.
        httpx2.get(url, timeout=2.0)
    except httpx2.HTTPError:
        return False
    return True


class Azurite:
    """A running Azurite blob service on 127.0.0.1."""

    def __init__(self, state_dir: Path, port: int, process: ProcessRecord) -> None:
        self.state_dir = state_dir
        self.port = port
        self.process = process

    @property
    def blob_endpoint(self) -> str:
        """Path-style account URL: ``http://127.0.0.1:<port>/devstoreaccount1``."""
        return f"http://127.0.0.1:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};"
            f"AccountKey={ACCOUNT_KEY};BlobEndpoint={self.blob_endpoint};"
        )

    @classmethod
    def start(cls, state_dir: Path | str) -> Azurite:
        """Install if needed, then start the blob service with data under ``state_dir``."""
        binary = ensure_installed()
        state = Path(state_dir)
        data = state / "data"
        data.mkdir(parents=True, exist_ok=True)

        def argv_for(port: int) -> list[str]:
            return [
                str(binary),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(port),
                "--location",
                str(data),
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
            ]

        process, port = processes.start_server(
            "azurite",
            argv_for,
            log=state / "azurite.log",
            ready=lambda p: _blob_service_up(f"http://127.0.0.1:{p}/"),
        )
        azurite = cls(state, port, process)
        azurite._save()
        return azurite

    def _save(self) -> None:
        write_state(
            self.state_dir / STATE_FILE, {"process": self.process.to_json(), "port": self.port}
        )

    @classmethod
    def load(cls, state_dir: Path | str) -> Azurite | None:
        """The Azurite recorded in ``state_dir`` by :meth:`start`, if any."""
        state = read_state(Path(state_dir) / STATE_FILE)
        if state is None:
            return None
        return cls(Path(state_dir), int(state["port"]), ProcessRecord.from_json(state["process"]))

    def running(self) -> bool:
        return processes.is_alive(self.process)

    def stop(self) -> None:
        """Stop Azurite (SIGTERM, then SIGKILL); the data directory is kept."""
        processes.stop(self.process)
        remove_state(self.state_dir / STATE_FILE)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
