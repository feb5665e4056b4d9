"""The credentials operator against the real cluster, PostgreSQL and Redis.

One operator subprocess (credentials + janitor, all namespaces) serves the module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_lib
from credentials_support import (
    OperatorProcess,
    app_credentials,
    install_admin_secret,
    install_crds,
    secret_data,
    start_operator,
)

from fjord.devcluster.cluster import ClusterState
from fjord.devcluster.postgres import LocalPostgres
from fjord.devcluster.redis import LocalRedis
from fjord.kube import Kube, is_true

AC = ("fjord.dev/v1alpha1", "AppCredentials")


@pytest.fixture(scope="module")
async def admin_ref(cluster: ClusterState, postgres: LocalPostgres, redis: LocalRedis) -> str:
    async with await Kube.connect(cluster.kubeconfig) as kube:
        await install_crds(kube)
        return await install_admin_secret(kube, postgres, redis)


@pytest.fixture(scope="module")
def operator(
    cluster: ClusterState, admin_ref: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = start_operator(Path(cluster.kubeconfig), admin_ref, log)
    try:
        yield process
    finally:
        process.stop()


async def ready(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = await kube.wait_for(
        *AC, name, namespace, until=lambda o: is_true(o, "Ready") and _observed(o), timeout=60
    )
    assert obj is not None
    return obj


def _observed(obj: dict[str, Any] | None) -> bool:
    status = (obj or {}).get("status") or {}
    return status.get("observedGeneration") == (obj or {}).get("metadata", {}).get("generation")


async def secret(kube: Kube, namespace: str, name: str) -> dict[str, str]:
    obj = await kube.wait_for("v1", "Secret", name, namespace, until=lambda o: o is not None)
    assert obj is not None
    return secret_data(obj)


def role_exists(postgres: LocalPostgres, role: str) -> bool:
    with psycopg.connect(postgres.dsn) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_roles WHERE rolname=%s", (role,)).fetchone() is not None
        )


def acl_user_exists(redis: LocalRedis, user: str) -> bool:
    with redis.client() as client:
        return client.execute_command("ACL", "GETUSER", user) is not None


@pytest.fixture
async def apps(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> AsyncIterator[tuple[str, str]]:
    for name in ("alpha", "beta"):
        await kube.apply(app_credentials(namespace, name))
    for name in ("alpha", "beta"):
        await ready(kube, namespace, name)
    return ("alpha", "beta")


async def test_credentials_work_and_are_isolated(
    kube: Kube, namespace: str, apps: tuple[str, str], postgres: LocalPostgres, redis: LocalRedis
) -> None:
    alpha = await secret(kube, namespace, "alpha-pg-main")
    beta = await secret(kube, namespace, "beta-pg-main")
    assert set(alpha) == {"host", "port", "database", "user", "password", "url"}
    with psycopg.connect(alpha["url"], autocommit=True) as conn:
        conn.execute("CREATE TABLE t (v int)")
        conn.execute("INSERT INTO t VALUES (1)")
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename='t'").fetchone()
        assert owner is not None
        assert owner[0].endswith("_owner")
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(
            host=alpha["host"],
            port=alpha["port"],
            user=alpha["user"],
            password=alpha["password"],
            dbname=beta["database"],
        )
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host=alpha["host"],
            port=alpha["port"],
            user=alpha["user"],
            password=beta["password"],
            dbname=alpha["database"],
        )

    r_alpha = await secret(kube, namespace, "alpha-redis")
    assert r_alpha["keyPrefix"] == "alpha:"
    with redis_lib.Redis.from_url(r_alpha["url"]) as client:
        client.set("alpha:k", "v")
        assert client.get("alpha:k") == b"v"
        with pytest.raises(redis_lib.exceptions.NoPermissionError):
            client.set("beta:k", "v")
        with pytest.raises(redis_lib.exceptions.NoPermissionError):
            client.execute_command("FLUSHALL")


async def test_noop_reconcile_writes_nothing(
    kube: Kube, namespace: str, apps: tuple[str, str]
) -> None:
    before = await kube.get(*AC, "alpha", namespace)
    secret_before = await kube.get("v1", "Secret", "alpha-pg-main", namespace)
    assert before is not None
    assert secret_before is not None
    # A label change is an event: the operator reconciles and must find nothing to do.
    await kube.patch(*AC, "alpha", {"metadata": {"labels": {"touch": "1"}}}, namespace)
    await kube.patch(*AC, "alpha", {"metadata": {"labels": {"touch": "2"}}}, namespace)
    await kube.apply(app_credentials(namespace, "gamma", redis=False))
    await ready(kube, namespace, "gamma")  # the operator has processed later events
    after = await kube.get(*AC, "alpha", namespace)
    secret_after = await kube.get("v1", "Secret", "alpha-pg-main", namespace)
    assert after is not None
    assert secret_after is not None
    assert after["status"] == before["status"]
    assert (
        secret_after["metadata"]["resourceVersion"] == secret_before["metadata"]["resourceVersion"]
    )


async def test_delete_secret_removes_external_users(
    kube: Kube, namespace: str, apps: tuple[str, str], postgres: LocalPostgres, redis: LocalRedis
) -> None:
    pg = await secret(kube, namespace, "alpha-pg-main")
    rd = await secret(kube, namespace, "alpha-redis")
    await kube.delete(*AC, "alpha", namespace)
    # Unused now: the janitor deletes both Secrets; the finalizer drops the users first.
    for name in ("alpha-pg-main", "alpha-redis"):
        await kube.wait_for("v1", "Secret", name, namespace, until=lambda o: o is None, timeout=60)
    assert not role_exists(postgres, pg["user"])
    assert not acl_user_exists(redis, rd["username"])
    assert role_exists(postgres, (await secret(kube, namespace, "beta-pg-main"))["user"])


async def test_janitor_keeps_used_and_protected_secrets(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    await kube.apply(app_credentials(namespace, "kept", redis=False, protected=True))
    await kube.apply(app_credentials(namespace, "used", databases=(), redis=True))
    await ready(kube, namespace, "kept")
    await ready(kube, namespace, "used")
    await kube.apply(_pod(namespace, "user", "used-redis"))
    await kube.delete(*AC, "kept", namespace)
    await kube.delete(*AC, "used", namespace)
    await kube.apply(app_credentials(namespace, "marker", databases=(), redis=True))
    await ready(kube, namespace, "marker")
    await kube.delete(*AC, "marker", namespace)
    await kube.wait_for("v1", "Secret", "marker-redis", namespace, until=lambda o: o is None)
    # The janitor swept after the marker went: the protected and the used Secret stay.
    assert await kube.get("v1", "Secret", "kept-pg-main", namespace) is not None
    assert await kube.get("v1", "Secret", "used-redis", namespace) is not None
    await kube.delete("v1", "Pod", "user", namespace)
    await kube.wait_for("v1", "Secret", "used-redis", namespace, until=lambda o: o is None)


async def test_a_deleted_current_secret_is_recreated(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    # Ready promises that the Secrets the status names exist: deleting one (a person, the
    # janitor) makes the operator recreate it now, not at the next resync an hour later.
    await kube.apply(app_credentials(namespace, "lost", redis=False))
    await ready(kube, namespace, "lost")
    old = await kube.get("v1", "Secret", "lost-pg-main", namespace)
    assert old is not None
    await kube.delete("v1", "Secret", "lost-pg-main", namespace)

    def recreated(obj: dict[str, Any] | None) -> bool:
        meta = (obj or {}).get("metadata") or {}
        return bool(meta) and meta.get("uid") != old["metadata"]["uid"]

    new = await kube.wait_for("v1", "Secret", "lost-pg-main", namespace, until=recreated)
    assert new is not None
    obj = await ready(kube, namespace, "lost")
    assert obj["status"]["services"][0]["secretName"] == "lost-pg-main"
    with psycopg.connect(secret_data(new)["url"]) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


async def test_expires_at_deletes_resource_and_credentials(
    kube: Kube, namespace: str, operator: OperatorProcess, postgres: LocalPostgres
) -> None:
    from datetime import UTC, datetime, timedelta

    soon = (datetime.now(UTC) + timedelta(seconds=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await kube.apply(
        app_credentials(namespace, "temp", redis=False, protected=True, expiresAt=soon)
    )
    await ready(kube, namespace, "temp")
    user = (await secret(kube, namespace, "temp-pg-main"))["user"]
    await kube.wait_for(*AC, "temp", namespace, until=lambda o: o is None, timeout=60)
    await kube.wait_for("v1", "Secret", "temp-pg-main", namespace, until=lambda o: o is None)
    assert not role_exists(postgres, user)


async def test_rotation_keeps_old_secret_while_a_replicaset_uses_it(
    kube: Kube, namespace: str, operator: OperatorProcess, postgres: LocalPostgres
) -> None:
    await kube.apply(app_credentials(namespace, "rot", redis=False))
    first = await ready(kube, namespace, "rot")
    assert first["status"]["services"][0]["secretName"] == "rot-pg-main"
    old = await secret(kube, namespace, "rot-pg-main")
    await kube.apply(_replicaset(namespace, "rot-1", "rot-pg-main"))
    await kube.patch(
        *AC, "rot", {"metadata": {"annotations": {"fjord.dev/rotate": "r1"}}}, namespace
    )
    rotated = await kube.wait_for(
        *AC,
        "rot",
        namespace,
        until=lambda o: (o or {}).get("status", {}).get("rotation") == "r1" and is_true(o, "Ready"),
    )
    assert rotated is not None
    assert rotated["status"]["services"][0]["secretName"] == "rot-pg-main-g2"
    new = await secret(kube, namespace, "rot-pg-main-g2")
    assert new["user"] != old["user"]
    assert new["database"] == old["database"]
    for creds in (old, new):  # both generations work during the rollout
        with psycopg.connect(creds["url"]) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    # The janitor has swept since (nudged by the reconcile); the old one is still in use.
    await kube.apply(app_credentials(namespace, "tick", databases=(), redis=True))
    await ready(kube, namespace, "tick")
    await kube.delete(*AC, "tick", namespace)
    await kube.wait_for("v1", "Secret", "tick-redis", namespace, until=lambda o: o is None)
    assert await kube.get("v1", "Secret", "rot-pg-main", namespace) is not None
    await kube.delete("apps/v1", "ReplicaSet", "rot-1", namespace)
    await kube.wait_for("v1", "Secret", "rot-pg-main", namespace, until=lambda o: o is None)
    assert not role_exists(postgres, old["user"])
    assert role_exists(postgres, new["user"])


def _pod_spec(secret_name: str) -> dict[str, Any]:
    return {
        "containers": [{"name": "app", "image": "example.invalid/app:1"}],
        "volumes": [{"name": "creds", "secret": {"secretName": secret_name}}],
    }


def _pod(namespace: str, name: str, secret_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": _pod_spec(secret_name),
    }


def _replicaset(namespace: str, name: str, secret_name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": _pod_spec(secret_name)},
        },
    }


def _database_exists(postgres: LocalPostgres, database: str) -> bool:
    with psycopg.connect(postgres.dsn) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", (database,))
        return found.fetchone() is not None


async def test_deletion_policy_delete_drops_the_database_retain_keeps_it(
    kube: Kube, namespace: str, operator: OperatorProcess, postgres: LocalPostgres
) -> None:
    dropped = app_credentials(namespace, "dropped", redis=False)
    dropped["spec"]["postgresql"]["deletionPolicy"] = "Delete"
    await kube.apply(dropped)
    await kube.apply(app_credentials(namespace, "kept", redis=False))  # default: Retain
    await ready(kube, namespace, "dropped")
    await ready(kube, namespace, "kept")
    gone = await secret(kube, namespace, "dropped-pg-main")
    stays = await secret(kube, namespace, "kept-pg-main")
    obj = await kube.get("v1", "Secret", "dropped-pg-main", namespace)
    assert obj is not None
    notes = obj["metadata"]["annotations"]
    assert notes["fjord.dev/postgresql-database-retention"] == "Delete"
    for creds in (gone, stays):
        with psycopg.connect(creds["url"], autocommit=True) as conn:
            conn.execute("CREATE TABLE data (v int)")

    # Rotation: the old generation's cleanup must not drop the database the new one uses.
    await kube.patch(
        *AC, "dropped", {"metadata": {"annotations": {"fjord.dev/rotate": "r1"}}}, namespace
    )
    await kube.wait_for(
        "v1", "Secret", "dropped-pg-main", namespace, until=lambda o: o is None, timeout=60
    )
    assert not role_exists(postgres, gone["user"])
    assert _database_exists(postgres, gone["database"])
    current = await secret(kube, namespace, "dropped-pg-main-g2")
    with psycopg.connect(current["url"]) as conn:
        assert conn.execute("SELECT count(*) FROM data").fetchone() == (0,)

    await kube.delete(*AC, "dropped", namespace)
    await kube.delete(*AC, "kept", namespace)
    for name in ("dropped-pg-main-g2", "kept-pg-main"):
        await kube.wait_for("v1", "Secret", name, namespace, until=lambda o: o is None, timeout=60)
    assert not role_exists(postgres, current["user"])
    assert not _database_exists(postgres, gone["database"])
    assert not role_exists(postgres, f"{gone['database']}_owner")
    assert not role_exists(postgres, stays["user"])
    assert _database_exists(postgres, stays["database"])  # Retain: the data survives the app
    assert role_exists(postgres, f"{stays['database']}_owner")
