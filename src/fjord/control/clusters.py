"""Clusters: list them, set where their Flux Receiver listens, bootstrap them.

The control plane holds no cluster credentials: bootstrap returns manifests (with a freshly
minted per-cluster HMAC token) for someone who has them to apply.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from fjord.control import audit, catalog
from fjord.control.bootstrap import BootstrapInput, bootstrap_objects
from fjord.control.errors import NotFoundError
from fjord.control.models import Cluster, Environment, Org
from fjord.control.plane import ControlPlane
from fjord.control.roles import Actor, Role
from fjord.control.secrets import new_token
from fjord.control.views import ClusterView


def _view(cluster: Cluster, org: str, env: str) -> ClusterView:
    return ClusterView(
        id=cluster.id,
        org=org,
        environment=env,
        name=cluster.name,
        receiver_url=cluster.receiver_url,
        bootstrapped=cluster.token_cipher is not None,
        active=cluster.active,
        sync_revision=cluster.sync_revision,
        sync_ready=cluster.sync_ready,
        sync_message=cluster.sync_message,
    )


async def list_clusters(
    plane: ControlPlane, actor: Actor, org: str | None = None
) -> list[ClusterView]:
    async with plane.db.session() as session:
        query = (
            select(Cluster, Org.name, Environment.name)
            .join(Org, Cluster.org_id == Org.id)
            .join(Environment, Cluster.environment_id == Environment.id)
            .order_by(Org.name, Environment.position, Cluster.name)
        )
        if org is not None:
            actor.require(org)
            query = query.where(Org.name == org)
        rows = (await session.execute(query)).all()
    return [_view(c, o, e) for c, o, e in rows if actor.role_in(o) is not None]


async def _cluster(plane: ControlPlane, actor: Actor, cluster_id: str) -> tuple[Cluster, str, str]:
    async with plane.db.session() as session:
        row = (
            await session.execute(
                select(Cluster, Org.name, Environment.name)
                .join(Org, Cluster.org_id == Org.id)
                .join(Environment, Cluster.environment_id == Environment.id)
                .where(Cluster.id == cluster_id)
            )
        ).one_or_none()
    if row is None or actor.role_in(row[1]) is None:
        raise NotFoundError(f"unknown cluster {cluster_id!r}")
    return row[0], row[1], row[2]


async def set_receiver(
    plane: ControlPlane, actor: Actor, cluster_id: str, receiver_url: str | None
) -> ClusterView:
    """Where fjord reaches the cluster's Flux Receiver (e.g. a local dev cluster's port)."""
    cluster, org, env = await _cluster(plane, actor, cluster_id)
    actor.require(org, Role.platform_admin)
    async with plane.db.session() as session:
        row = await session.get(Cluster, cluster.id)
        assert row is not None
        row.receiver_url = receiver_url.rstrip("/") if receiver_url else None
        audit.record(session, actor, "cluster.receiver", cluster_id, org=org, url=receiver_url)
    return _view(row, org, env)


async def bootstrap(
    plane: ControlPlane, actor: Actor, org: str, environment: str, name: str
) -> list[dict[str, Any]]:
    """The cluster's one-time manifests; mints (and so rotates) its HMAC token."""
    actor.require(org, Role.platform_admin)
    cluster, _, _ = await _cluster(plane, actor, catalog.cluster_id(org, environment, name))
    token = new_token()
    async with plane.db.session() as session:
        row = await session.get(Cluster, cluster.id)
        assert row is not None
        row.token_cipher = plane.cipher.encrypt(token)
        audit.record(session, actor, "cluster.bootstrap", cluster.id, org=org)
    return bootstrap_objects(
        plane.settings,
        BootstrapInput(
            org=org,
            environment=environment,
            cluster_id=cluster.id,
            token=token,
            public_key_pem=plane.public_key_pem,
            legacy_public_key_pem=plane.legacy_public_key_pem,
        ),
    )


async def cluster_token(plane: ControlPlane, actor: Actor, cluster_id: str) -> str:
    """The cluster's current HMAC token (platform-admins; for tests and re-applying)."""
    cluster, org, _ = await _cluster(plane, actor, cluster_id)
    actor.require(org, Role.platform_admin)
    if cluster.token_cipher is None:
        raise NotFoundError(f"cluster {cluster_id} is not bootstrapped")
    return plane.cipher.decrypt(cluster.token_cipher)
