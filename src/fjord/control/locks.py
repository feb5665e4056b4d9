"""Named leases in the database: the one lock that works the same on SQLite and PostgreSQL.

Taking a lock inserts a row; the primary key makes a second insert fail, so exactly one holder
exists across processes and machines. A lease carries an expiry so a process that died while
holding it cannot block others forever; :func:`owner_id` names the process for recovery.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from fjord.control.db import Database
from fjord.control.errors import ConflictError
from fjord.control.models import Lock

_INSTANCE = uuid.uuid4().hex[:8]


def owner_id() -> str:
    """This process: host, pid and a per-start nonce (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_INSTANCE}"


def owner_alive(owner: str) -> bool:
    """False only when we can tell: same host and the pid is gone or restarted."""
    host, _, rest = owner.partition(":")
    pid_text, _, instance = rest.partition(":")
    if host != socket.gethostname():
        return True
    if pid_text == str(os.getpid()):
        return instance == _INSTANCE
    try:
        os.kill(int(pid_text), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


async def try_acquire(db: Database, name: str, owner: str, lease: float) -> bool:
    now = time.time()
    async with db.session() as session:
        # Expired leases are free for the taking.
        await session.execute(delete(Lock).where(Lock.name == name, Lock.expires < now))
    try:
        async with db.session() as session:
            session.add(Lock(name=name, owner=owner, expires=now + lease))
    except IntegrityError:
        return False
    return True


async def release(db: Database, name: str, owner: str) -> None:
    async with db.session() as session:
        await session.execute(delete(Lock).where(Lock.name == name, Lock.owner == owner))


@asynccontextmanager
async def hold(
    db: Database, name: str, *, wait: float = 60.0, lease: float = 900.0
) -> AsyncIterator[None]:
    """Hold lock ``name``; waits up to ``wait`` seconds, then raises ConflictError."""
    owner = owner_id()
    deadline = time.monotonic() + wait
    delay = 0.05
    while not await try_acquire(db, name, owner, lease):
        if time.monotonic() > deadline:
            raise ConflictError(
                f"{name} is busy: another operation holds it",
                hint="retry once it has finished",
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)
    try:
        yield
    finally:
        await release(db, name, owner)
