"""Admin connection settings, read from a Secret named in the operator's configuration.

The Secret (``--credentials-admin-secret NAMESPACE/NAME``) holds, all optional:

* ``postgresql-url``: a superuser (or CREATEROLE + CREATEDB) libpq URL;
* ``postgresql-host``/``postgresql-port``: the address apps use (default: the URL's);
* ``redis-url``: an admin URL (a user allowed ``ACL``/``CLIENT``);
* ``redis-host``/``redis-port``: the address apps use (default: the URL's).

Never from the AppCredentials: an app must not be able to point the operator at a server.
The Secret is re-read at most every ``ttl`` seconds, so rotating the admin password works
without a restart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from fjord.kube import KubeError
from fjord.operators.common.errors import PermanentError, TransientError
from fjord.operators.common.kubeapi import CountingKube
from fjord.operators.credentials.secret import decode
from fjord.spec.infra import AppCredentialsReason


@dataclass(frozen=True)
class Endpoint:
    admin_url: str
    host: str
    port: int


@dataclass(frozen=True)
class AdminSettings:
    postgresql: Endpoint | None
    redis: Endpoint | None

    @classmethod
    def from_data(cls, data: dict[str, str]) -> AdminSettings:
        return cls(_endpoint(data, "postgresql", 5432), _endpoint(data, "redis", 6379))


def _endpoint(data: dict[str, str], prefix: str, default_port: int) -> Endpoint | None:
    url = data.get(f"{prefix}-url")
    if not url:
        return None
    parts = urlsplit(url)
    host = data.get(f"{prefix}-host") or parts.hostname or "localhost"
    port = int(data.get(f"{prefix}-port") or parts.port or default_port)
    return Endpoint(url, host, port)


class AdminSource:
    def __init__(self, kube: CountingKube, ref: str | None, ttl: float = 60.0) -> None:
        self._kube = kube
        self._ref = ref
        self._ttl = ttl
        self._cached: tuple[float, AdminSettings] | None = None

    async def get(self) -> AdminSettings:
        if self._cached and time.monotonic() - self._cached[0] < self._ttl:
            return self._cached[1]
        if not self._ref or "/" not in self._ref:
            raise PermanentError(
                "the operator has no admin Secret configured (--credentials-admin-secret NS/NAME)",
                reason=AppCredentialsReason.ADMIN_SECRET_NOT_CONFIGURED,
            )
        namespace, name = self._ref.split("/", 1)
        try:
            found = await self._kube.get("v1", "Secret", name, namespace)
        except KubeError as exc:
            raise TransientError(
                f"reading admin Secret: {exc}", reason=AppCredentialsReason.ADMIN_SECRET_UNREADABLE
            ) from exc
        if found is None:
            raise TransientError(
                f"admin Secret {self._ref} does not exist",
                reason=AppCredentialsReason.ADMIN_SECRET_MISSING,
                retry_after=30,
            )
        settings = AdminSettings.from_data(decode(found.get("data")))
        self._cached = (time.monotonic(), settings)
        return settings
