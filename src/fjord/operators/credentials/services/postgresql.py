"""PostgreSQL: a login role per Secret, a database per app shared by its generations.

Layout per (namespace, AppCredentials, database):

* database ``<ns>_<app>_<db>``, owned by a NOLOGIN group role ``<database>_owner``; CONNECT is
  revoked from PUBLIC, so other apps' roles cannot even connect;
* one login role per Secret (``fjord_<ns>_<secret>``), member of the owner role, with
  ``SET role = <owner>`` so every object it creates belongs to the owner role. Dropping a login
  role (cleanup, rotation) therefore never touches the app's data.

Retention (``spec.postgresql.deletionPolicy``, recorded on each Secret as
``fjord.dev/postgresql-database-retention``): cleanup always drops the Secret's login role.
``Retain`` (the default) keeps the database and its owner role (a rollback or a re-created app
finds its data; dropping them is an administrator's decision). ``Delete`` drops the database and
the owner role too, once the owner role has no member left (so cleaning up an old generation
after a rotation never drops the database the current one uses); an advisory lock per database
orders this against a concurrent apply.

Passwords go to the server as SCRAM verifiers (:mod:`..scram`), never in clear text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

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
from fjord.spec.infra import AppCredentialsReason

T = TypeVar("T")
TIMEOUT = 10.0
RETAIN = "Retain"
DELETE = "Delete"


def _where(endpoint: Endpoint | None) -> str:
    """``host:port`` of the admin connection (never its credentials)."""
    if endpoint is None:
        return "PostgreSQL"
    parts = urlsplit(endpoint.admin_url)
    return f"PostgreSQL at {parts.hostname or 'localhost'}:{parts.port or 5432}"


RETRYING = (
    "retrying with backoff; check that the server is up and reachable from the operator "
    "and the admin Secret's postgresql-url"
)


def _classify(exc: BaseException, what: str, endpoint: Endpoint | None = None) -> Exception:
    if isinstance(exc, PermanentError | TransientError):
        return exc
    where = _where(endpoint)
    if isinstance(exc, TimeoutError | PoolTimeout):
        return TransientError(
            f"{where} did not answer in time ({what}): down, overloaded or unreachable; {RETRYING}",
            reason=AppCredentialsReason.POSTGRESQL_TIMEOUT,
        )
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return PermanentError(
            f"{what}: {exc}; the admin role in postgresql-url needs CREATEROLE and CREATEDB",
            reason=AppCredentialsReason.POSTGRESQL_PRIVILEGES,
        )
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return TransientError(
            f"{where} is unavailable ({what}): {detail}; {RETRYING}",
            reason=AppCredentialsReason.POSTGRESQL_UNAVAILABLE,
        )
    if isinstance(exc, psycopg.Error):
        return TransientError(
            f"{where} error ({what}): {exc}", reason=AppCredentialsReason.POSTGRESQL_ERROR
        )
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
                "the admin Secret has no postgresql-url",
                reason=AppCredentialsReason.POSTGRESQL_NOT_CONFIGURED,
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
            raise _classify(exc, what, endpoint) from exc

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

        policy = str(request.settings.get("deletionPolicy") or RETAIN)

        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            if policy == DELETE:  # a concurrent cleanup must not drop the database under us
                async with _database_lock(conn, database):
                    await create(conn)
            else:
                await create(conn)

        async def create(conn: psycopg.AsyncConnection[Any]) -> None:
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
                naming.PG_RETENTION: policy,
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

        delete = annotations.get(naming.PG_RETENTION) == DELETE

        async def drop_role(conn: psycopg.AsyncConnection[Any]) -> None:
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

        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            if not (delete and database and group):
                await drop_role(conn)
                return
            async with _database_lock(conn, database):
                await drop_role(conn)
                await _drop_database_if_unused(conn, database, group)

        await self._run(f"drop {role}", work)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


@contextlib.asynccontextmanager
async def _database_lock(conn: psycopg.AsyncConnection[Any], database: str) -> AsyncIterator[None]:
    """A session advisory lock per database: serialises creating a generation's role in it
    with dropping it (deletionPolicy Delete). Released with the session if the link breaks."""
    key = f"fjord-credentials/{database}"
    await conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
    try:
        yield
    finally:
        with contextlib.suppress(psycopg.Error):
            await conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))


async def _drop_database_if_unused(
    conn: psycopg.AsyncConnection[Any], database: str, group: str
) -> None:
    """deletionPolicy Delete: once no login role (no generation) is left in the owner role,
    drop the database (disconnecting its sessions) and the owner role."""
    members = await conn.execute(
        "SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "WHERE g.rolname = %s LIMIT 1",
        (group,),
    )
    if await members.fetchone() is not None:
        return  # another generation still uses the database
    await conn.execute(
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
    )
    await conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(group)))


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
