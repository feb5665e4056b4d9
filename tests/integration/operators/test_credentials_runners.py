"""The loopback PostgreSQL and Redis runners: authenticated access only, restart keeps data."""

from __future__ import annotations

import psycopg
import pytest
import redis as redis_lib

from fjord.devcluster.postgres import LocalPostgres
from fjord.devcluster.redis import LocalRedis


def test_postgres_requires_the_generated_password(postgres: LocalPostgres) -> None:
    with psycopg.connect(postgres.dsn) as conn:
        assert conn.execute("SHOW fsync").fetchone() == ("off",)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host=postgres.host, port=postgres.port, user="postgres", password="x")
    loaded = LocalPostgres.load(postgres.state_dir)
    assert loaded is not None
    assert loaded.dsn == postgres.dsn


def test_redis_requires_the_generated_password(redis: LocalRedis) -> None:
    with redis_lib.Redis.from_url(redis.url) as client:
        assert client.ping()
    anonymous = redis_lib.Redis(host=redis.host, port=redis.port)
    with pytest.raises(redis_lib.AuthenticationError):
        anonymous.ping()
    anonymous.close()
    loaded = LocalRedis.load(redis.state_dir)
    assert loaded is not None
    assert loaded.url == redis.url
