"""A loopback OCI registry for tests and the demo: Debian's ``docker-registry`` (Distribution 2.8).

:class:`LocalRegistry` writes its own config (listen on 127.0.0.1 at a free port, filesystem
storage in its state directory, deletes enabled, optional htpasswd basic auth with bcrypt
entries, the only kind the registry accepts), starts ``/usr/bin/docker-registry serve``, and
polls ``GET /v2/`` until it answers. Its process record and port go into ``registry.json`` in the
state directory, so another process can find and stop it with :meth:`LocalRegistry.load`.
Process handling (detached start, readiness, stop, pid-reuse safety) is
:mod:`fjord.devcluster.processes`, shared with the clusters and the other loopback servers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import bcrypt
import httpx2

from fjord.devcluster import processes
from fjord.devcluster.processes import ComponentFailed, ProcessRecord
from fjord.devcluster.statefile import read_state, remove_state, write_state

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
STATE_FILE = "registry.json"


def _http_ok(url: str, ok: Callable[[int], bool]) -> bool:
    try:
        return ok(httpx2.get(url, timeout=2.0).status_code)
    except httpx2.HTTPError:
        return False


def _registry_up(status: int) -> bool:
    # 401 means the registry is serving and merely wants credentials.
    return status in (200, 401)


def htpasswd_line(username: str, password: str) -> str:
    """An htpasswd entry with a bcrypt hash (docker-registry rejects every other scheme)."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
    return f"{username}:{hashed}\n"


class LocalRegistry:
    """A Distribution registry on 127.0.0.1 with its storage, config and log in ``state_dir``."""

    def __init__(
        self,
        state_dir: Path,
        port: int,
        process: ProcessRecord,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.port = port
        self.process = process
        self.username = username
        self.password = password

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the registry host as it appears in image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def log_path(self) -> Path:
        return Path(self.process.log)

    @classmethod
    def start(
        cls,
        state_dir: Path | str,
        *,
        username: str | None = None,
        password: str | None = None,
        auth: Mapping[str, Any] | None = None,
        binary: Path = REGISTRY_BINARY,
    ) -> LocalRegistry:
        """Start a registry; with ``username`` and ``password`` it requires basic auth.

        ``auth`` replaces the config's ``auth`` section verbatim (e.g. ``{"token": {...}}`` to
        test Bearer tokens against a token server of the caller's).
        """
        state = Path(state_dir)
        if not binary.exists():
            raise ComponentFailed(
                f"{binary} not found", hint="install it with: apt-get install -y docker-registry"
            )
        state.mkdir(parents=True, exist_ok=True)
        (state / "storage").mkdir(exist_ok=True)
        if username is not None and auth is None:
            (state / "htpasswd").write_text(htpasswd_line(username, password or ""))
            auth = {"htpasswd": {"realm": "fjord-registry", "path": str(state / "htpasswd")}}
        config_path = state / "config.yml"

        def argv_for(port: int) -> list[str]:
            config = {
                "version": 0.1,
                "log": {"level": "info", "accesslog": {"disabled": False}},
                "storage": {
                    "filesystem": {"rootdirectory": str(state / "storage")},
                    "delete": {"enabled": True},
                    "cache": {"blobdescriptor": "inmemory"},
                },
                "http": {"addr": f"127.0.0.1:{port}", "secret": "fjord-loopback-registry"},
                **({"auth": auth} if auth else {}),
            }
            # JSON is valid YAML, and keeps the config free of a YAML writer dependency here.
            config_path.write_text(json.dumps(config, indent=2))
            return [str(binary), "serve", str(config_path)]

        process, port = processes.start_server(
            "docker-registry",
            argv_for,
            log=state / "registry.log",
            ready=lambda p: _http_ok(f"http://127.0.0.1:{p}/v2/", _registry_up),
        )
        registry = cls(state, port, process, username, password)
        registry._save()
        return registry

    def _save(self) -> None:
        state = {
            "process": self.process.to_json(),
            "port": self.port,
            "username": self.username,
            "password": self.password,
        }
        write_state(self.state_dir / STATE_FILE, state)

    @classmethod
    def load(cls, state_dir: Path | str) -> LocalRegistry | None:
        """The registry recorded in ``state_dir`` by :meth:`start` (possibly in another process)."""
        state = read_state(Path(state_dir) / STATE_FILE)
        if state is None:
            return None
        return cls(
            Path(state_dir),
            int(state["port"]),
            ProcessRecord.from_json(state["process"]),
            state.get("username"),
            state.get("password"),
        )

    def running(self) -> bool:
        """Whether the recorded process is alive and still this registry."""
        return processes.is_alive(self.process)

    def stop(self) -> None:
        """Stop the registry (SIGTERM, then SIGKILL); the storage directory is kept."""
        processes.stop(self.process)
        remove_state(self.state_dir / STATE_FILE)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
