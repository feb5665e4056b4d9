"""A loopback Redis server for tests, the benchmark and the demo (Debian's ``redis-server`` 7).

:meth:`LocalRedis.start` writes an ACL file whose ``default`` user has a generated password (so an
unauthenticated client is refused and ``ACL SETUSER``/``ACL SAVE`` work as in production), then
starts ``redis-server`` on 127.0.0.1 at a free port without persistence of data. Readiness is
polled with an authenticated PING. Port, password and pid go into ``redis.json`` in the state
directory so :meth:`LocalRedis.load` finds the server from another process.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import redis

from fjord.devcluster import processes
from fjord.devcluster.statefile import read_state, remove_state, write_state
from fjord.errors import FjordError

STATE_FILE = "redis.json"
ADMIN_USER = "default"


class RedisError(FjordError):
    """The local Redis could not be started or found."""


def _can_ping(port: int, password: str) -> bool:
    client = redis.Redis(
        host="127.0.0.1", port=port, username=ADMIN_USER, password=password, socket_timeout=2
    )
    try:
        return bool(client.ping())
    finally:
        client.close()


@dataclass
class LocalRedis:
    """A running Redis on 127.0.0.1 whose ``default`` user has :attr:`password`."""

    state_dir: Path
    port: int
    password: str
    record: processes.ProcessRecord

    host = "127.0.0.1"
    username = ADMIN_USER

    @property
    def url(self) -> str:
        return self.url_at(self.host)

    def url_at(self, host: str) -> str:
        """The admin URL through another address it listens on (see ``start``)."""
        return f"redis://{ADMIN_USER}:{self.password}@{host}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return Path(self.record.log)

    def client(self) -> redis.Redis:
        """A synchronous admin client (the caller closes it)."""
        return redis.Redis(
            host=self.host, port=self.port, username=ADMIN_USER, password=self.password
        )

    @classmethod
    def start(
        cls, state_dir: Path | str, *, port: int | None = None, also_listen: str | None = None
    ) -> LocalRedis:
        """Start on loopback and, with ``also_listen``, on that address of the machine too."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisError("redis-server not found", hint="apt-get install -y redis-server")
        state = Path(state_dir)
        state.mkdir(parents=True, exist_ok=True)
        acl_file = state / "users.acl"
        previous = read_state(state / STATE_FILE)
        if previous is not None and acl_file.exists():
            password = str(previous["password"])
        else:
            password = secrets.token_urlsafe(24)
            # ACL file, not requirepass: users created by ACL SETUSER survive an ACL SAVE and a
            # restart of the server, as they do in a production deployment.
            fd = os.open(acl_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(f"user {ADMIN_USER} on >{password} ~* &* +@all\n")
        chosen = port or processes.free_port()
        argv = [
            binary,
            "--bind",
            "127.0.0.1",
            *([also_listen] if also_listen else []),
            "--port",
            str(chosen),
            "--dir",
            str(state),
            "--aclfile",
            str(acl_file),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        record = processes.start("redis", argv, log=state / "redis.log")
        processes.wait_until(
            f"redis on 127.0.0.1:{chosen}",
            lambda: _can_ping(chosen, password),
            watch=[record],
            timeout=30,
        )
        server = cls(state, chosen, password, record)
        server._save()
        return server

    def _save(self) -> None:
        data = {"port": self.port, "password": self.password, "record": self.record.to_json()}
        write_state(self.state_dir / STATE_FILE, data)

    @classmethod
    def load(cls, state_dir: Path | str) -> LocalRedis | None:
        state = Path(state_dir)
        data = read_state(state / STATE_FILE)
        if data is None:
            return None
        return cls(
            state,
            int(data["port"]),
            str(data["password"]),
            processes.ProcessRecord.from_json(data["record"]),
        )

    def running(self) -> bool:
        return processes.is_alive(self.record)

    def stop(self) -> None:
        processes.stop(self.record)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): commands hang, as with an overloaded server."""
        os.kill(self.record.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.record.pid, signal.SIGCONT)

    def destroy(self) -> None:
        self.stop()
        remove_state(self.state_dir / STATE_FILE)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
