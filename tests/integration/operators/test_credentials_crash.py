"""Crash safety: SIGKILL the operator at random points, restart it, check convergence.

Each run creates an AppCredentials (PostgreSQL + Redis) or rotates an existing one, kills the
operator after a random delay (mid-reconcile most of the time), restarts it, and waits for Ready.
At the end every AppCredentials is deleted; the janitor and finalizers must leave no role and no
ACL user behind, and at no point may two Secrets exist for one service generation.
"""

from __future__ import annotations

import random
from pathlib import Path

import psycopg
from credentials_support import (
    app_credentials,
    install_admin_secret,
    install_crds,
    start_operator,
)

from fjord.devcluster.cluster import ClusterState
from fjord.devcluster.postgres import LocalPostgres
from fjord.devcluster.redis import LocalRedis
from fjord.kube import Kube, is_true

AC = ("fjord.dev/v1alpha1", "AppCredentials")
RUNS = 50


def _roles(postgres: LocalPostgres, namespace: str) -> set[str]:
    prefix = "fjord_" + namespace.replace("-", "_")
    with psycopg.connect(postgres.dsn) as conn:
        rows = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (prefix + "%",))
        return {r[0] for r in rows.fetchall()}


def _acl_users(redis: LocalRedis, namespace: str) -> set[str]:
    with redis.client() as client:
        users = client.execute_command("ACL", "USERS")
    return {u.decode() for u in users if u.decode().startswith(f"fjord.{namespace}.")}


async def test_kill_at_random_points_leaves_no_orphans(
    kube: Kube,
    namespace: str,
    cluster: ClusterState,
    postgres: LocalPostgres,
    redis: LocalRedis,
    tmp_path: Path,
) -> None:
    await install_crds(kube)
    admin = await install_admin_secret(kube, postgres, redis)
    rng = random.Random(5)  # fixed seed: a failure is reproducible
    names: list[str] = []
    operator = start_operator(Path(cluster.kubeconfig), admin, tmp_path / "op-0.log")
    for run in range(RUNS):
        if names and rng.random() < 0.3:
            name = rng.choice(names)
            await kube.patch(
                *AC,
                name,
                {"metadata": {"annotations": {"fjord.dev/rotate": f"r{run}"}}},
                namespace,
            )
        else:
            name = f"app{run}"
            names.append(name)
            await kube.apply(app_credentials(namespace, name))
        # Kill somewhere between "just received the event" and "long done".
        import asyncio

        await asyncio.sleep(rng.uniform(0.0, 0.6))
        operator.kill()
        operator = start_operator(Path(cluster.kubeconfig), admin, tmp_path / f"op-{run + 1}.log")
        obj = await kube.wait_for(
            *AC,
            name,
            namespace,
            until=lambda o: (
                is_true(o, "Ready")
                and (o or {}).get("status", {}).get("observedGeneration")
                == (o or {}).get("metadata", {}).get("generation")
                and (o or {}).get("status", {}).get("rotation")
                == ((o or {}).get("metadata", {}).get("annotations") or {}).get("fjord.dev/rotate")
            ),
            timeout=90,
        )
        assert obj is not None
        services = {s["key"]: s["secretName"] for s in obj["status"]["services"]}
        assert set(services) == {"postgresql/main", "redis"}
        for secret_name in services.values():
            assert await kube.get("v1", "Secret", secret_name, namespace) is not None
    secrets = await kube.items(
        "v1", "Secret", namespace, label_selector="app.kubernetes.io/managed-by=fjord-credentials"
    )
    by_service = [
        (
            s["metadata"]["annotations"]["fjord.dev/credentials-service"],
            s["metadata"]["labels"]["fjord.dev/app-credentials"],
            s["metadata"]["annotations"]["fjord.dev/credentials-generation"],
        )
        for s in secrets
    ]
    assert len(by_service) == len(set(by_service)), "duplicate Secrets for one generation"
    # Every role and ACL user belongs to an existing Secret (no orphans while running).
    users = {s["metadata"]["annotations"].get("fjord.dev/postgresql-role") for s in secrets} | {
        s["metadata"]["annotations"].get("fjord.dev/redis-user") for s in secrets
    }
    assert _roles(postgres, namespace) <= users
    assert _acl_users(redis, namespace) <= users
    for name in names:
        await kube.delete(*AC, name, namespace)
    for secret in secrets:
        await kube.wait_for(
            "v1",
            "Secret",
            secret["metadata"]["name"],
            namespace,
            until=lambda o: o is None,
            timeout=120,
        )
    operator.stop()
    assert _roles(postgres, namespace) == set()
    assert _acl_users(redis, namespace) == set()
