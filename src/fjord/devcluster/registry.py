"""A loopback OCI registry for tests and the demo: Debian's ``docker-registry`` (Distribution 2.8).

:class:`LocalRegistry` writes its own config (listen on 127.0.0.1 at a free port, filesystem
storage in its state directory, deletes enabled, optional htpasswd basic auth with bcrypt
entries, the only kind the registry accepts), starts ``/usr/bin/docker-registry serve``, and
polls ``GET /v2/`` until it answers. Its pid and port go into ``registry.json`` in the state
directory, so another process can find and stop it with :meth:`LocalRegistry.load`.

:class:`LoopbackProcess` is the process handling shared with the Azurite runner: start with the
log captured to a file, readiness polled (a process that exits early raises with the tail of
its log), stop with SIGTERM then SIGKILL, and never signal a pid whose ``/proc/<pid>/cmdline``
is not the expected program (pids are reused).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import bcrypt
import httpx2

from fjord.errors import FjordError

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
STATE_FILE = "registry.json"


class ProcessError(FjordError):
    """A loopback server could not be started or stopped."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the caller retries if it is taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def pid_cmdline(pid: int) -> list[str] | None:
    """The command line of a live process, or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if not raw:
        return None  # a zombie: already exited, waiting to be reaped
    return raw.rstrip(b"\x00").decode(errors="replace").split("\x00")


@dataclass
class LoopbackProcess:
    """A server process we started (or found through a state file), identified by pid."""

    pid: int
    argv: Sequence[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    @classmethod
    def spawn(cls, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> Self:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C in the terminal must not kill it half-way
            )
        return cls(pid=popen.pid, argv=list(argv), log_path=log_path, popen=popen)

    def matches(self) -> bool:
        """Whether ``pid`` is still this program (not exited, not a reused pid)."""
        cmdline = pid_cmdline(self.pid)
        if cmdline is None:
            return False
        # An interpreter script shows up as "<interpreter> <script> <args>", so compare the
        # tail: the script path and every argument must be exactly ours.
        expected = list(self.argv)
        return len(cmdline) >= len(expected) and cmdline[len(cmdline) - len(expected) :] == expected

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return self.matches()

    def wait_ready(self, probe: Callable[[], bool], what: str, deadline: float = 60.0) -> None:
        """Poll ``probe`` until it returns True; raise with the log if the process dies."""
        end = time.monotonic() + deadline
        delay = 0.02
        while True:
            if not self.alive():
                raise ProcessError(
                    f"{what} exited during start-up; last log lines:\n{log_tail(self.log_path)}"
                )
            if probe():
                return
            if time.monotonic() > end:
                self.stop()
                raise ProcessError(
                    f"{what} did not become ready within {deadline:.0f}s; last log lines:\n"
                    f"{log_tail(self.log_path)}"
                )
            time.sleep(delay)  # polling interval, not a readiness assumption
            delay = min(delay * 2, 0.5)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; a no-op if already gone."""
        if not self.matches():
            self._reap()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        end = time.monotonic() + grace
        while self.matches() and time.monotonic() < end:
            self._reap()
            time.sleep(0.05)
        if self.matches():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self._reap(block=True)

    def _reap(self, block: bool = False) -> None:
        if self.popen is not None:
            if block:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=10)
            else:
                self.popen.poll()
            return
        # Started by another process of ours that exited: it may still be our child.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0 if block and not self.matches() else os.WNOHANG)


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
        process: LoopbackProcess,
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
        return self.process.log_path

    @classmethod
    def start(
        cls,
        state_dir: Path | str,
        *,
        username: str | None = None,
        password: str | None = None,
        auth: Mapping[str, Any] | None = None,
        binary: Path = REGISTRY_BINARY,
        attempts: int = 5,
    ) -> LocalRegistry:
        """Start a registry; with ``username`` and ``password`` it requires basic auth.

        ``auth`` replaces the config's ``auth`` section verbatim (e.g. ``{"token": {...}}`` to
        test Bearer tokens against a token server of the caller's).
        """
        state = Path(state_dir)
        if not binary.exists():
            raise ProcessError(
                f"{binary} not found", hint="install it with: apt-get install -y docker-registry"
            )
        state.mkdir(parents=True, exist_ok=True)
        (state / "storage").mkdir(exist_ok=True)
        if username is not None and auth is None:
            (state / "htpasswd").write_text(htpasswd_line(username, password or ""))
            auth = {"htpasswd": {"realm": "fjord-registry", "path": str(state / "htpasswd")}}
        last_error: ProcessError | None = None
        for _ in range(attempts):
            port = free_port()
            config_path = state / "config.yml"
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
            process = LoopbackProcess.spawn(
                [str(binary), "serve", str(config_path)], state / "registry.log"
            )
            try:
                process.wait_ready(
                    functools.partial(_http_ok, f"http://127.0.0.1:{port}/v2/", _registry_up),
                    f"docker-registry on port {port}",
                )
            except ProcessError as exc:
                last_error = exc  # most likely the port was taken in between; try another
                process.stop()
                continue
            registry = cls(state, port, process, username, password)
            registry._save()
            return registry
        raise last_error or ProcessError("docker-registry did not start")

    def _save(self) -> None:
        state = {
            "pid": self.process.pid,
            "port": self.port,
            "argv": list(self.process.argv),
            "log": str(self.process.log_path),
            "username": self.username,
            "password": self.password,
        }
        tmp = self.state_dir / f".{STATE_FILE}.tmp"
        tmp.unlink(missing_ok=True)
        # 0600: the file records the test registry's password for LocalRegistry.load().
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(state, indent=2))
        os.replace(tmp, self.state_dir / STATE_FILE)

    @classmethod
    def load(cls, state_dir: Path | str) -> LocalRegistry:
        """The registry recorded in ``state_dir`` by :meth:`start` (possibly in another process)."""
        state_path = Path(state_dir) / STATE_FILE
        try:
            state = json.loads(state_path.read_text())
        except FileNotFoundError as exc:
            raise ProcessError(f"no registry state in {state_dir}") from exc
        process = LoopbackProcess(
            pid=int(state["pid"]), argv=list(state["argv"]), log_path=Path(state["log"])
        )
        return cls(
            Path(state_dir),
            int(state["port"]),
            process,
            state.get("username"),
            state.get("password"),
        )

    def running(self) -> bool:
        """Whether the recorded process is alive and still this registry."""
        return self.process.alive() and self.process.matches()

    def stop(self) -> None:
        """Stop the registry (SIGTERM, then SIGKILL); the storage directory is kept."""
        self.process.stop()
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / STATE_FILE).unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
