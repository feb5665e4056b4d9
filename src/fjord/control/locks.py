"""Named leases in the database: the one lock that works the same on SQLite and PostgreSQL.

Taking a lock inserts a row; the primary key makes a second insert fail, so exactly one holder
exists across processes and machines. The owner is a replica id (``ControlPlane.replica``), and
the lease is the replica's: its heartbeat renews every lock it holds (:func:`renew`), so a
replica that dies or stops heartbeating loses its locks within one lease, never later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from fjord.control.db import Database
from fjord.control.errors import ConflictError
from fjord.control.models import Lock


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


async def renew(db: Database, owner: str, lease: float) -> None:
    """The heartbeat's part: every lock ``owner`` holds lives one more lease."""
    async with db.session() as session:
        await session.execute(
            update(Lock).where(Lock.owner == owner).values(expires=time.time() + lease)
        )


async def release_all(db: Database, owner: str) -> None:
    async with db.session() as session:
        await session.execute(delete(Lock).where(Lock.owner == owner))


@asynccontextmanager
async def hold(
    db: Database, name: str, owner: str, *, lease: float, wait: float = 300.0
) -> AsyncIterator[None]:
    """Hold lock ``name`` as ``owner``; waits up to ``wait`` seconds, then raises ConflictError.

    ``wait`` is longer than any lease on purpose: a holder that died frees it within its lease.
    """
    deadline = time.monotonic() + wait
    delay = 0.02
    while not await try_acquire(db, name, owner, lease):
        if time.monotonic() > deadline:
            raise ConflictError(
                f"{name} is busy: another operation holds it",
                hint="retry once it has finished",
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)
    try:
        yield
    finally:
        await release(db, name, owner)
