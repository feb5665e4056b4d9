"""A loopback PostgreSQL server for tests, the benchmark and the demo (Debian's PostgreSQL 15).

:meth:`LocalPostgres.start` runs ``initdb`` with a generated superuser password (scram-sha-256
for TCP, so a wrong password really fails) and starts ``postgres`` on 127.0.0.1 at a free port,
with its unix sockets next to the data and ``fsync=off`` (test data is disposable). Readiness is
polled with a real login. The port, password and pid go into ``postgres.json`` in the state
directory, so :meth:`LocalPostgres.load` finds the server from another process.

PostgreSQL refuses to run as root. When we are root, the server runs as the ``postgres`` OS user
(through ``setpriv``, which execs, so the recorded pid is the postmaster itself) and its data lives
in a directory owned by that user under ``/tmp``: the caller's state directory (often a pytest
``tmp_path`` below a 0700 root directory) is not reachable for it. The state file records where.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import psycopg

from fjord.devcluster import processes
from fjord.devcluster.statefile import read_state, remove_state, write_state
from fjord.errors import FjordError

BIN_DIR = Path("/usr/lib/postgresql/15/bin")
STATE_FILE = "postgres.json"
SUPERUSER = "postgres"
OS_USER = "postgres"


class PostgresError(FjordError):
    """The local PostgreSQL could not be set up, started or found."""


def _as_os_user() -> list[str]:
    """The argv prefix that runs a command as the ``postgres`` OS user when we are root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(OS_USER)
    except KeyError as exc:
        raise PostgresError(
            f"running as root, but there is no {OS_USER!r} OS user to run PostgreSQL as",
            hint="apt-get install -y postgresql-15 (it creates the user)",
        ) from exc
    return ["setpriv", f"--reuid={OS_USER}", f"--regid={OS_USER}", "--init-groups", "--"]


def _runtime_dir(state: Path) -> Path:
    """Where data and sockets live: inside ``state``, or a postgres-owned dir when root."""
    if os.geteuid() != 0:
        runtime = state / "pg"
        runtime.mkdir(parents=True, exist_ok=True)
        return runtime
    runtime = Path(tempfile.mkdtemp(prefix="fjord-postgres-"))
    user = pwd.getpwnam(OS_USER)
    os.chown(runtime, user.pw_uid, user.pw_gid)
    return runtime


def _can_login(port: int, password: str) -> bool:
    with psycopg.connect(
        host="127.0.0.1",
        port=port,
        user=SUPERUSER,
        password=password,
        dbname="postgres",
        connect_timeout=2,
    ) as conn:
        conn.execute("SELECT 1")
    return True


@dataclass
class LocalPostgres:
    """A running PostgreSQL on 127.0.0.1 (superuser ``postgres`` with :attr:`password`)."""

    state_dir: Path
    runtime_dir: Path
    port: int
    password: str
    record: processes.ProcessRecord

    host = "127.0.0.1"
    user = SUPERUSER

    @property
    def data_dir(self) -> Path:
        return self.runtime_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.runtime_dir / "sockets"

    @property
    def dsn(self) -> str:
        """A libpq URL of the superuser on the ``postgres`` database."""
        return self.dsn_at(self.host)

    def dsn_at(self, host: str) -> str:
        """The superuser's URL through another address it listens on (see ``start``)."""
        return f"postgresql://{SUPERUSER}:{self.password}@{host}:{self.port}/postgres"

    @property
    def log_path(self) -> Path:
        return Path(self.record.log)

    @classmethod
    def start(
        cls, state_dir: Path | str, *, port: int | None = None, also_listen: str | None = None
    ) -> LocalPostgres:
        """Initialise (first time only) and start; ``port`` pins the port (else a free one).

        ``also_listen``: another address of this machine to listen on besides loopback (where
        Pods of local real nodes reach the host), with password logins allowed from its /16.
        """
        state = Path(state_dir)
        state.mkdir(parents=True, exist_ok=True)
        if not (BIN_DIR / "postgres").exists():
            raise PostgresError(
                f"{BIN_DIR / 'postgres'} not found", hint="apt-get install -y postgresql-15"
            )
        previous = read_state(state / STATE_FILE)
        if previous is not None and (Path(previous["runtime_dir"]) / "data").exists():
            runtime, password = Path(previous["runtime_dir"]), str(previous["password"])
        else:
            runtime, password = _runtime_dir(state), secrets.token_urlsafe(24)
            _initdb(runtime, password, state / "initdb.log")
        if also_listen:
            _allow_network(runtime / "data", also_listen)
        server = cls._spawn(
            state, runtime, password, port or processes.free_port(), also_listen=also_listen
        )
        server._save()
        return server

    @classmethod
    def _spawn(
        cls, state: Path, runtime: Path, password: str, port: int, also_listen: str | None = None
    ) -> LocalPostgres:
        sockets = runtime / "sockets"
        sockets.mkdir(exist_ok=True)
        _chown_to_os_user(sockets)
        argv = [
            *_as_os_user(),
            str(BIN_DIR / "postgres"),
            "-D",
            str(runtime / "data"),
            "-h",
            ",".join(["127.0.0.1", *([also_listen] if also_listen else [])]),
            "-p",
            str(port),
            "-k",
            str(sockets),
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]
        record = processes.start("postgres", argv, log=state / "postgres.log")
        processes.wait_until(
            f"postgres on 127.0.0.1:{port}",
            lambda: _can_login(port, password),
            watch=[record],
            timeout=60,
        )
        return cls(state, runtime, port, password, record)

    def _save(self) -> None:
        data = {
            "runtime_dir": str(self.runtime_dir),
            "port": self.port,
            "password": self.password,
            "record": self.record.to_json(),
        }
        write_state(self.state_dir / STATE_FILE, data)

    @classmethod
    def load(cls, state_dir: Path | str) -> LocalPostgres | None:
        """The server recorded in ``state_dir`` by :meth:`start` (possibly by another process)."""
        state = Path(state_dir)
        data = read_state(state / STATE_FILE)
        if data is None:
            return None
        return cls(
            state,
            Path(data["runtime_dir"]),
            int(data["port"]),
            str(data["password"]),
            processes.ProcessRecord.from_json(data["record"]),
        )

    def running(self) -> bool:
        return processes.is_alive(self.record)

    def stop(self) -> None:
        """Stop the server (fast shutdown); the data is kept for a restart with :meth:`start`.

        SIGINT is PostgreSQL's fast shutdown: it disconnects clients and exits cleanly. SIGTERM
        would be the smart shutdown, which waits for every pooled client connection to close.
        """
        processes.stop(self.record, timeout=30, graceful=signal.SIGINT)

    def pause(self) -> None:
        """Freeze the postmaster (SIGSTOP): new connections hang, as with an overloaded server."""
        os.kill(self.record.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.record.pid, signal.SIGCONT)

    def restart(self) -> LocalPostgres:
        """Stop and start again on the same port with the same data (a database outage)."""
        self.stop()
        return LocalPostgres.start(self.state_dir, port=self.port)

    def destroy(self) -> None:
        """Stop and delete the data (tests' teardown)."""
        self.stop()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        remove_state(self.state_dir / STATE_FILE)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _chown_to_os_user(path: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam(OS_USER)
        os.chown(path, user.pw_uid, user.pw_gid)


def _allow_network(data: Path, address: str) -> None:
    network = ".".join(address.split(".")[:2]) + ".0.0/16"
    hba = data / "pg_hba.conf"
    line = f"host all all {network} scram-sha-256\n"
    if line not in hba.read_text():
        with hba.open("a") as handle:
            handle.write(line)


def _initdb(runtime: Path, password: str, log: Path) -> None:
    pwfile = runtime / "pwfile"
    pwfile.write_text(password + "\n")
    _chown_to_os_user(pwfile)
    pwfile.chmod(0o600)
    try:
        result = subprocess.run(
            [
                *_as_os_user(),
                str(BIN_DIR / "initdb"),
                "-D",
                str(runtime / "data"),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise PostgresError(f"initdb failed:\n{processes.log_tail(log)}")
