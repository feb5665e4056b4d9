"""PostgreSQL: a login role per Secret, a database per app shared by its generations.

Layout per (namespace, AppCredentials, database):

* database ``<ns>_<app>_<db>``, owned by a NOLOGIN group role ``<database>_owner``; CONNECT is
  revoked from PUBLIC, so other apps' roles cannot even connect;
* one login role per Secret (``fjord_<ns>_<secret>``), member of the owner role, with
  ``SET role = <owner>`` so every object it creates belongs to the owner role. Dropping a login
  role (cleanup, rotation) therefore never touches the app's data.

Retention: cleanup drops the login role only. The database and its owner role are **kept**
(a rollback or a re-created app finds its data); dropping them is an administrator's decision
(``DROP DATABASE``; listed by ``COMMENT ON DATABASE`` as fjord-managed).

Passwords go to the server as SCRAM verifiers (:mod:`..scram`), never in clear text.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from fjord.operators.common.errors import PermanentError, TransientError
from fjord.operators.credentials import naming
from fjord.operators.credentials.admin import AdminSource, Endpoint
from fjord.operators.credentials.request import POSTGRESQL, ServiceRequest
from fjord.operators.credentials.scram import verifier
from fjord.operators.credentials.services.base import Issued

T = TypeVar("T")
TIMEOUT = 10.0


def _classify(exc: BaseException, what: str) -> Exception:
    if isinstance(exc, PermanentError | TransientError):
        return exc
    if isinstance(exc, TimeoutError | PoolTimeout):
        return TransientError(
            f"PostgreSQL did not answer in time ({what})", reason="PostgreSQLTimeout"
        )
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return PermanentError(f"{what}: {exc}", reason="PostgreSQLPrivileges")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return TransientError(
            f"PostgreSQL unavailable ({what}): {exc}", reason="PostgreSQLUnavailable"
        )
    if isinstance(exc, psycopg.Error):
        return TransientError(f"PostgreSQL error ({what}): {exc}", reason="PostgreSQLError")
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


class PostgreSQLHandler:
    kind = POSTGRESQL

    def __init__(self, admin: AdminSource, *, pool_size: int = 8) -> None:
        self._admin = admin
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool | None = None
        self._pool_url: str | None = None
        self._lock = asyncio.Lock()

    async def _endpoint(self) -> Endpoint:
        settings = await self._admin.get()
        if settings.postgresql is None:
            raise PermanentError(
                "the admin Secret has no postgresql-url", reason="PostgreSQLNotConfigured"
            )
        return settings.postgresql

    async def _pooled(self, endpoint: Endpoint) -> AsyncConnectionPool:
        async with self._lock:
            if self._pool is None or self._pool_url != endpoint.admin_url:
                if self._pool is not None:
                    await self._pool.close()
                self._pool = AsyncConnectionPool(
                    endpoint.admin_url,
                    min_size=1,
                    max_size=self._pool_size,
                    kwargs={"autocommit": True, "connect_timeout": 5},
                    open=False,
                    timeout=TIMEOUT,
                )
                await self._pool.open(wait=False)
                self._pool_url = endpoint.admin_url
            return self._pool

    async def _run(
        self, what: str, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]
    ) -> T:
        endpoint = await self._endpoint()
        pool = await self._pooled(endpoint)
        try:
            async with asyncio.timeout(TIMEOUT * 2):
                async with pool.connection() as conn:
                    return await work(conn)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise _classify(exc, what) from exc

    async def apply(
        self,
        namespace: str,
        owner: str,
        secret: str,
        request: ServiceRequest,
        password: str | None,
    ) -> Issued:
        endpoint = await self._endpoint()
        database = naming.pg_database(namespace, owner, str(request.settings["database"]))
        group = naming.pg_owner(database)
        role = naming.pg_role(namespace, secret)
        password = password or secrets.token_urlsafe(24)
        comment = json.dumps({"namespace": namespace, "secret": secret, "database": database})

        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            ident = sql.Identifier
            exists = "SELECT 1 FROM pg_roles WHERE rolname = %s"
            if not await (await conn.execute(exists, (group,))).fetchone():
                await _ignore_duplicate(
                    conn, sql.SQL("CREATE ROLE {} NOLOGIN").format(ident(group))
                )
            secret_sql = sql.Literal(verifier(password))
            if await (await conn.execute(exists, (role,))).fetchone():
                await conn.execute(
                    sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(ident(role), secret_sql)
                )
            else:
                await _ignore_duplicate(
                    conn,
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                        ident(role), secret_sql, ident(group)
                    ),
                )
            await conn.execute(sql.SQL("GRANT {} TO {}").format(ident(group), ident(role)))
            await conn.execute(
                sql.SQL("ALTER ROLE {} SET role = {}").format(ident(role), sql.Literal(group))
            )
            await conn.execute(
                sql.SQL("COMMENT ON ROLE {} IS {}").format(ident(role), sql.Literal(comment))
            )
            found = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if not await found.fetchone():
                await _ignore_duplicate(
                    conn,
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(ident(database), ident(group)),
                )
            await conn.execute(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident(database))
            )

        await self._run(f"apply {role}", work)
        url = f"postgresql://{role}:{password}@{endpoint.host}:{endpoint.port}/{database}"
        return Issued(
            data={
                "host": endpoint.host,
                "port": str(endpoint.port),
                "database": database,
                "user": role,
                "password": password,
                "url": url,
            },
            annotations={
                naming.PG_ROLE: role,
                naming.PG_DATABASE: database,
                naming.PG_OWNER: group,
                naming.PG_RETENTION: "Retain",
            },
        )

    async def present(self, annotations: Mapping[str, str]) -> bool:
        role = annotations.get(naming.PG_ROLE)
        if not role:
            return False

        async def work(conn: psycopg.AsyncConnection[Any]) -> bool:
            found = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            return await found.fetchone() is not None

        return await self._run(f"check {role}", work)

    async def cleanup(self, annotations: Mapping[str, str]) -> None:
        role = annotations.get(naming.PG_ROLE)
        if not role:
            return
        database = annotations.get(naming.PG_DATABASE)
        group = annotations.get(naming.PG_OWNER)
        endpoint = await self._endpoint()

        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            found = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if await found.fetchone() is None:
                return
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            if database and group:
                # Objects the role created after a RESET ROLE go to the owner role, not away.
                await _reassign(endpoint.admin_url, database, role, group)
            await conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))

        await self._run(f"drop {role}", work)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


async def _ignore_duplicate(conn: psycopg.AsyncConnection[Any], statement: sql.Composed) -> None:
    """Run a CREATE; a concurrent creator (or a retry after a lost reply) already did it."""
    try:
        await conn.execute(statement)
    except (psycopg.errors.DuplicateObject, psycopg.errors.DuplicateDatabase):
        pass
    except psycopg.errors.UniqueViolation:
        pass


async def _reassign(admin_url: str, database: str, role: str, group: str) -> None:
    try:
        conn = await psycopg.AsyncConnection.connect(
            make_conninfo(admin_url, dbname=database), autocommit=True, connect_timeout=5
        )
    except psycopg.OperationalError as exc:
        if "does not exist" in str(exc):
            return
        raise
    async with conn:
        await conn.execute(
            sql.SQL("REASSIGN OWNED BY {} TO {}").format(
                sql.Identifier(role), sql.Identifier(group)
            )
        )
        await conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
