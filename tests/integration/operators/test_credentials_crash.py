"""Crash safety: SIGKILL the operator at random points, restart it, check convergence.

Each of the 50 runs issues a batch of changes at once — new AppCredentials (PostgreSQL + Redis)
and rotations of existing ones — and kills the operator after a random delay, so the kill lands
in the middle of several reconciles (or of the re-check of everything that each restart does),
then checks that no service generation has two Secrets and restarts the operator. Runs do not
wait for convergence: work interrupted in one run is finished, or interrupted again, in later
ones. At the end every AppCredentials must be Ready with its latest rotation handled, every role
and ACL user must belong to a Secret; then everything is deleted and the janitor and finalizers
must leave no role and no ACL user behind.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import psycopg
from credentials_support import (
    app_credentials,
    install_admin_secret,
    install_crds,
    start_operator,
)
from prometheus_client import CollectorRegistry

from fjord.devcluster.cluster import ClusterState
from fjord.devcluster.postgres import LocalPostgres
from fjord.devcluster.redis import LocalRedis
from fjord.kube import Kube, is_true
from fjord.operators.common.kubeapi import CountingKube
from fjord.operators.common.metrics import OperatorMetrics
from fjord.operators.common.nudges import Nudges
from fjord.operators.janitor.sweep import Janitor

AC = ("fjord.dev/v1alpha1", "AppCredentials")
RUNS = 50
BATCH = 3  # changes per run


def _roles(postgres: LocalPostgres, namespace: str) -> set[str]:
    prefix = "fjord_" + namespace.replace("-", "_")
    with psycopg.connect(postgres.dsn) as conn:
        rows = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (prefix + "%",))
        return {r[0] for r in rows.fetchall()}


def _acl_users(redis: LocalRedis, namespace: str) -> set[str]:
    with redis.client() as client:
        users = client.execute_command("ACL", "USERS")
    return {u.decode() for u in users if u.decode().startswith(f"fjord.{namespace}.")}


def _duplicates(secrets: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    seen = [
        (
            s["metadata"]["annotations"]["fjord.dev/credentials-service"],
            s["metadata"]["labels"]["fjord.dev/app-credentials"],
            s["metadata"]["annotations"]["fjord.dev/credentials-generation"],
        )
        for s in secrets
    ]
    return [k for k in set(seen) if seen.count(k) > 1]


def _converged(obj: dict[str, Any] | None) -> bool:
    status = (obj or {}).get("status") or {}
    meta = (obj or {}).get("metadata") or {}
    return (
        is_true(obj, "Ready")
        and status.get("observedGeneration") == meta.get("generation")
        and status.get("rotation") == (meta.get("annotations") or {}).get("fjord.dev/rotate")
    )


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
    selector = "app.kubernetes.io/managed-by=fjord-credentials"
    operator = start_operator(Path(cluster.kubeconfig), admin, tmp_path / "op-0.log")
    # Whatever fails, no operator may outlive this test: a leaked one would race the next
    # test's operator for the same objects.
    try:
        for run in range(RUNS):
            for change in range(BATCH):
                if names and rng.random() < 0.3:
                    rotate = {"metadata": {"annotations": {"fjord.dev/rotate": f"r{run}.{change}"}}}
                    await kube.patch(*AC, rng.choice(names), rotate, namespace)
                else:
                    names.append(f"app{run}-{change}")
                    await kube.apply(app_credentials(namespace, names[-1]))
            # Kill somewhere between "just received the events" and "long done".
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            operator.kill()
            secrets = await kube.items("v1", "Secret", namespace, label_selector=selector)
            assert _duplicates(secrets) == [], f"run {run}: duplicate Secrets for one generation"
            operator = start_operator(
                Path(cluster.kubeconfig), admin, tmp_path / f"op-{run + 1}.log"
            )
        for name in names:
            obj = await kube.wait_for(*AC, name, namespace, until=_converged, timeout=120)
            assert obj is not None
            services = {s["key"]: s["secretName"] for s in obj["status"]["services"]}
            assert set(services) == {"postgresql/main", "redis"}
            for secret_name in services.values():
                assert await kube.get("v1", "Secret", secret_name, namespace) is not None
        secrets = await kube.items("v1", "Secret", namespace, label_selector=selector)
        assert _duplicates(secrets) == [], "duplicate Secrets for one generation"
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
    finally:
        operator.stop()
    assert _roles(postgres, namespace) == set()
    assert _acl_users(redis, namespace) == set()


async def test_janitor_keeps_the_secrets_of_a_rotation_whose_status_write_was_lost(
    kube: Kube,
    namespace: str,
    cluster: ClusterState,
    postgres: LocalPostgres,
    redis: LocalRedis,
    tmp_path: Path,
) -> None:
    """The interleaving behind a failure of the test above, replayed step by step.

    A kill between a rotation's new Secrets and the status write that names them leaves Secrets
    that only the pending rotation names. The janitor used to delete them (unused, past the
    grace period) while the restarted operator's reconcile, which had just seen them, reported
    them Ready: Ready named a Secret that was gone.
    """
    await install_crds(kube)
    admin = await install_admin_secret(kube, postgres, redis)
    kubeconfig = Path(cluster.kubeconfig)
    operator = start_operator(kubeconfig, admin, tmp_path / "op-0.log", janitor_grace=3600)
    try:
        await kube.apply(app_credentials(namespace, "rot"))
        before = await kube.wait_for(*AC, "rot", namespace, until=_converged, timeout=120)
        assert before is not None
        rotate = {"metadata": {"annotations": {"fjord.dev/rotate": "r1"}}}
        await kube.patch(*AC, "rot", rotate, namespace)
        rotated = await kube.wait_for(*AC, "rot", namespace, until=_converged, timeout=120)
        assert rotated is not None
    finally:
        operator.kill()
    new_names = {s["secretName"] for s in rotated["status"]["services"]}
    assert new_names == {"rot-pg-main-g2", "rot-redis-g2"}
    uids = {}
    for name in new_names:
        found = await kube.get("v1", "Secret", name, namespace)
        assert found is not None
        uids[name] = found["metadata"]["uid"]
    # The kill came before the status write: the status still names generation 1.
    lost = {"status": {**before["status"], "rotation": None}}
    await kube.patch(*AC, "rot", lost, namespace, subresource="status")
    metrics = OperatorMetrics.create(CollectorRegistry())
    janitor = Janitor(
        CountingKube(kube, metrics, "janitor"), Nudges(), [namespace], interval=3600, grace=0
    )
    assert await janitor.sweep(namespace) == 0
    operator = start_operator(kubeconfig, admin, tmp_path / "op-1.log")
    try:
        done = await kube.wait_for(*AC, "rot", namespace, until=_converged, timeout=120)
        assert done is not None
        assert {s["secretName"] for s in done["status"]["services"]} == new_names
        for name, uid in uids.items():  # the same Secrets: found again, not recreated
            found = await kube.get("v1", "Secret", name, namespace)
            assert found is not None
            assert found["metadata"]["uid"] == uid
            assert not found["metadata"].get("deletionTimestamp")
    finally:
        operator.stop()
