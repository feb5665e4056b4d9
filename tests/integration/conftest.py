"""Session-scoped loopback servers for integration tests: docker-registry and Azurite.

* ``registry``: a Distribution registry on 127.0.0.1 without auth;
* ``auth_registry``: one that requires basic auth (``auth_registry.username``/``.password``);
* ``azurite``: the Azurite blob service (``azurite.connection_string``).

Each starts once per session (per xdist worker) on a free port with its own state directory and
is stopped at the end. A missing ``docker-registry`` or npm fails the test with the fix; nothing
is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fjord.devcluster.azurite import Azurite
from fjord.devcluster.registry import LocalRegistry

REGISTRY_USER = "fjord"
REGISTRY_PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    server = LocalRegistry.start(tmp_path_factory.mktemp("registry"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    server = LocalRegistry.start(
        tmp_path_factory.mktemp("auth-registry"),
        username=REGISTRY_USER,
        password=REGISTRY_PASSWORD,
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite.start(tmp_path_factory.mktemp("azurite"))
    try:
        yield server
    finally:
        server.stop()


# --- PostgreSQL and Redis (credentials operator tests) -------------------------------------------
# Appended: a PostgreSQL 15 and a Redis 7 on loopback, each with a generated admin password.

from fjord.devcluster.postgres import LocalPostgres  # noqa: E402
from fjord.devcluster.redis import LocalRedis  # noqa: E402


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    """A PostgreSQL superuser session target: ``postgres.dsn``, ``.host``, ``.port``."""
    server = LocalPostgres.start(tmp_path_factory.mktemp("postgres"))
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    """A Redis with ACLs whose ``default`` user needs a password: ``redis.url``."""
    server = LocalRedis.start(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.destroy()
