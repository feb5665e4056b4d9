"""Redis: an ACL user per Secret, restricted to the app's key prefix and allowed commands.

``ACL SETUSER <user> reset on #<sha256> ~<prefix>* &<prefix>* <rules…>``: ``reset`` makes a
retry or a spec change converge to exactly these rules; the password is sent as its SHA-256
(``#``), never in clear text. ``ACL SAVE`` persists users when the server has an ACL file.
Cleanup deletes the user (Redis disconnects its clients).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from fjord.operators.common.errors import PermanentError, TransientError
from fjord.operators.credentials import naming
from fjord.operators.credentials.admin import AdminSource, Endpoint
from fjord.operators.credentials.request import REDIS, ServiceRequest
from fjord.operators.credentials.services.base import Issued
from fjord.spec.infra import AppCredentialsReason

T = TypeVar("T")
TIMEOUT = 10.0


RETRYING = (
    "retrying with backoff; check that the server is up and reachable from the operator "
    "and the admin Secret's redis-url"
)


def _classify(exc: Exception, what: str, endpoint: Endpoint | None = None) -> Exception:
    if isinstance(exc, PermanentError | TransientError):
        return exc
    where = "Redis"
    if endpoint is not None:
        parts = urlsplit(endpoint.admin_url)
        where = f"Redis at {parts.hostname or 'localhost'}:{parts.port or 6379}"
    if isinstance(exc, TimeoutError | redis_errors.TimeoutError):
        return TransientError(
            f"{where} did not answer in time ({what}): down, overloaded or unreachable; {RETRYING}",
            reason=AppCredentialsReason.REDIS_TIMEOUT,
        )
    # Before ConnectionError: redis-py's AuthenticationError is one.
    if isinstance(exc, redis_errors.NoPermissionError | redis_errors.AuthenticationError):
        return PermanentError(
            f"{what}: {exc}; check the user and password in redis-url (it needs ACL and CLIENT)",
            reason=AppCredentialsReason.REDIS_PRIVILEGES,
        )
    if isinstance(exc, redis_errors.ConnectionError | OSError):
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return TransientError(
            f"{where} is unavailable ({what}): {detail}; {RETRYING}",
            reason=AppCredentialsReason.REDIS_UNAVAILABLE,
        )
    if isinstance(exc, redis_errors.ResponseError):
        return PermanentError(
            f"Redis refused {what}: {exc}", reason=AppCredentialsReason.REDIS_REJECTED
        )
    return exc


class RedisHandler:
    kind = REDIS

    def __init__(self, admin: AdminSource) -> None:
        self._admin = admin
        self._client: aioredis.Redis | None = None
        self._url: str | None = None

    async def _endpoint(self) -> Endpoint:
        settings = await self._admin.get()
        if settings.redis is None:
            raise PermanentError(
                "the admin Secret has no redis-url",
                reason=AppCredentialsReason.REDIS_NOT_CONFIGURED,
            )
        return settings.redis

    async def _run(self, what: str, work: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        endpoint = await self._endpoint()
        if self._client is None or self._url != endpoint.admin_url:
            if self._client is not None:
                await self._client.aclose()
            self._client = aioredis.Redis.from_url(
                endpoint.admin_url,
                socket_timeout=TIMEOUT,
                socket_connect_timeout=5,
                max_connections=16,
            )
            self._url = endpoint.admin_url
        try:
            async with asyncio.timeout(TIMEOUT * 2):
                return await work(self._client)
        except Exception as exc:
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
        user = naming.redis_user(namespace, secret)
        prefix = str(request.settings["keyPrefix"])
        rules = [str(rule) for rule in request.settings["commands"]]
        password = password or secrets.token_urlsafe(24)
        digest = hashlib.sha256(password.encode()).hexdigest()

        async def work(client: aioredis.Redis) -> None:
            await client.execute_command(  # type: ignore[no-untyped-call]
                "ACL",
                "SETUSER",
                user,
                "reset",
                "on",
                f"#{digest}",
                f"~{prefix}*",
                f"&{prefix}*",
                *rules,
            )
            await _save(client)

        await self._run(f"ACL SETUSER {user}", work)
        return Issued(
            data={
                "host": endpoint.host,
                "port": str(endpoint.port),
                "username": user,
                "password": password,
                "keyPrefix": prefix,
                "url": f"redis://{user}:{password}@{endpoint.host}:{endpoint.port}/0",
            },
            annotations={naming.REDIS_USER: user},
        )

    async def present(self, annotations: Mapping[str, str]) -> bool:
        user = annotations.get(naming.REDIS_USER)
        if not user:
            return False

        async def work(client: aioredis.Redis) -> bool:
            return (
                await client.execute_command(  # type: ignore[no-untyped-call]
                    "ACL", "GETUSER", user
                )
                is not None
            )

        return await self._run(f"ACL GETUSER {user}", work)

    async def cleanup(self, annotations: Mapping[str, str]) -> None:
        user = annotations.get(naming.REDIS_USER)
        if not user:
            return

        async def work(client: aioredis.Redis) -> None:
            await client.execute_command(  # type: ignore[no-untyped-call]
                "ACL", "DELUSER", user
            )
            await _save(client)

        await self._run(f"ACL DELUSER {user}", work)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


async def _save(client: aioredis.Redis) -> None:
    try:
        await client.execute_command(  # type: ignore[no-untyped-call]
            "ACL", "SAVE"
        )
    except redis_errors.ResponseError as exc:
        if "aclfile" not in str(exc).lower():  # a server without an ACL file keeps users in memory
            raise
