"""Child processes of a local cluster: start detached, watch, stop, identify after a restart.

Components run in their own session so they outlive the ``fjord`` command that started them
(``fjord dev cluster up`` returns; ``down`` later stops them from another process). A record of
each process holds its pid *and* its kernel start time, so ``down`` never signals an unrelated
process that happens to reuse the pid after a crash or a reboot.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fjord.errors import FjordError


class ComponentFailed(FjordError):
    """A component exited or never became ready; the message carries its log tail."""


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    start_ticks: int
    log: str
    argv: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            start_ticks=int(data["start_ticks"]),
            log=str(data["log"]),
            argv=tuple(data["argv"]),
        )


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PORT = 20000


def _ephemeral_low() -> int:
    """The first port the kernel hands out to outgoing connections and ``bind(0)``."""
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port that is free on 127.0.0.1 right now.

    Chosen at random *below* the kernel's ephemeral range: a port from that range (what
    ``bind(0)`` returns) can be taken by any outgoing connection between being picked and being
    bound by the server, which happened under load with clusters that pick a dozen ports up
    front. Falls back to the kernel's choice if no such port is free.
    """
    high = _ephemeral_low()
    if high - _LOWEST_PORT >= 1000:
        for _ in range(100):
            port = secrets.SystemRandom().randrange(_LOWEST_PORT, high)
            if _bindable(port) and _HANDED_OUT.take(port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Reservations:
    """Ports this process handed out recently.

    A port is free when picked but bound only later, after the caller has picked more (a
    cluster picks a dozen up front, and the platform starts four clusters side by side): with
    ~50 ports in flight, two random picks collided about once in ten bring-ups. A port handed
    out is not handed out again for a while, whoever asks. Process-wide on purpose: it is the
    process's own sockets that would clash.
    """

    def __init__(self, hold_seconds: float = 600.0) -> None:
        self._hold = hold_seconds
        self._until: dict[int, float] = {}
        self._lock = threading.Lock()

    def take(self, port: int) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._until.get(port, 0.0) > now:
                return False
            self._until = {p: t for p, t in self._until.items() if t > now}
            self._until[port] = now + self._hold
            return True


_HANDED_OUT = _Reservations()


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) follows the command name, which may itself contain spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z" and _last_thread(pid):
        return None  # exited; only its parent's wait is missing
    # A multi-threaded program (every Go binary) whose main thread has exited shows "Z" while
    # its other threads still run and hold its sockets: that is not gone yet.
    return int(fields[19])


def _last_thread(pid: int) -> bool:
    try:
        return len(os.listdir(f"/proc/{pid}/task")) <= 1
    except OSError:
        return True


def is_alive(record: ProcessRecord) -> bool:
    return _start_ticks(record.pid) == record.start_ticks


def log_tail(path: str | Path, lines: int = 25) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            text = handle.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def start(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ProcessRecord:
    """Start ``argv`` detached, its output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    full_env.update(env or {})
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    ticks = _start_ticks(proc.pid)
    if ticks is None:
        proc.wait()
        raise ComponentFailed(f"{name} exited immediately:\n{log_tail(log)}")
    # Forget the Popen object on purpose: the child belongs to its own session and is reaped by
    # whoever outlives it; keeping it would emit ResourceWarnings in a short-lived CLI.
    proc.returncode = 0
    return ProcessRecord(name, proc.pid, ticks, str(log), tuple(argv))


def _reap(pid: int) -> None:
    # Our own children stay zombies until waited for; other processes' are reaped by init.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop(
    record: ProcessRecord, timeout: float = 10.0, graceful: signal.Signals = signal.SIGTERM
) -> None:
    """Send ``graceful`` (SIGTERM) to the process group, then SIGKILL after ``timeout``."""
    if not is_alive(record):
        _reap(record.pid)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(record.pid, graceful)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not is_alive(record):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(record.pid, signal.SIGKILL)
    while is_alive(record):
        _reap(record.pid)
        time.sleep(0.02)


def stop_all(records: Sequence[ProcessRecord], timeout: float = 10.0) -> None:
    """Stop many processes at once: SIGTERM to all, one shared wait, then SIGKILL stragglers.

    Stopping one after another costs the sum of every graceful shutdown; this costs the
    slowest one.
    """
    live = [r for r in records if is_alive(r)]
    for record in live:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        for record in live:
            _reap(record.pid)
        live = [r for r in live if is_alive(r)]
        if live:
            time.sleep(0.05)
    for record in live:
        stop(record, timeout=0)


def wait_until(
    what: str,
    check: Callable[[], bool],
    *,
    watch: Sequence[ProcessRecord],
    timeout: float,
    interval: float = 0.1,
) -> None:
    """Poll ``check`` until it is true; fail fast with the log tail if a watched process dies."""
    deadline = time.monotonic() + timeout
    while True:
        for record in watch:
            if not is_alive(record):
                _reap(record.pid)
                raise ComponentFailed(
                    f"{record.name} exited while waiting for {what}. "
                    f"Last lines of {record.log}:\n{log_tail(record.log)}"
                )
        with contextlib.suppress(Exception):
            if check():
                return
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {r.name} ({r.log})\n{log_tail(r.log, 10)}" for r in watch)
            raise ComponentFailed(f"timed out after {timeout:.0f}s waiting for {what}.\n{tails}")
        time.sleep(interval)


def start_server(
    name: str,
    argv_for: Callable[[int], Sequence[str]],
    *,
    log: Path,
    ready: Callable[[int], bool],
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    attempts: int = 5,
) -> tuple[ProcessRecord, int]:
    """Start a server on a free loopback port and wait until ``ready(port)``.

    A port that is free when picked can be taken before the server binds it; a server that
    fails then is retried on another port, up to ``attempts`` times.
    """
    last: ComponentFailed | None = None
    for _ in range(attempts):
        port = free_port()
        record = start(name, argv_for(port), log=log, env=env)
        try:
            wait_until(
                f"{name} on port {port}",
                functools.partial(ready, port),
                watch=[record],
                timeout=timeout,
            )
        except ComponentFailed as exc:
            stop(record)
            last = exc
            continue
        return record, port
    raise last or ComponentFailed(f"{name} did not start")
