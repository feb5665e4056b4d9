"""Fleet-wide counts for monitoring: what is deploying, and how the clusters report the apps.

Only counts by org and environment (no app names), so the numbers can be scraped without a
token. Computed from the database at scrape time with three grouped queries, so they are right
after a restart and across several control-plane replicas.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select

from fjord.control import states
from fjord.control.events import UNKNOWN_REVISION
from fjord.control.models import App, Cluster, ClusterApp, Deployment, Environment, Org
from fjord.control.plane import ControlPlane

OrgEnv = tuple[str, str]


@dataclass(frozen=True)
class FleetCounts:
    # (org, environment, state) → unfinished deployments
    deployments: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    # (org, environment, health) → app×cluster cells; health: ready|failed|pending|unknown_revision
    cells: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    # (org, environment, sync) → active clusters by their root sync: ready|failed|pending
    clusters: Counter[tuple[str, str, str]] = field(default_factory=Counter)


def _health(ready: bool | None, reason: str | None) -> str:
    if reason == UNKNOWN_REVISION:
        return "unknown_revision"
    return {True: "ready", False: "failed", None: "pending"}[ready]


async def fleet_counts(plane: ControlPlane) -> FleetCounts:
    counts = FleetCounts()
    async with plane.db.session() as session:
        active = await session.execute(
            select(Org.name, Environment.name, Deployment.state, func.count())
            .join(App, App.id == Deployment.app_id)
            .join(Org, Org.id == App.org_id)
            .join(Environment, Environment.id == Deployment.environment_id)
            .where(Deployment.state.in_(states.ACTIVE))
            .group_by(Org.name, Environment.name, Deployment.state)
        )
        for org, env, state, n in active:
            counts.deployments[(org, env, state)] += n
        cells = await session.execute(
            select(Org.name, Environment.name, ClusterApp.ready, ClusterApp.reason, func.count())
            .join(Cluster, Cluster.id == ClusterApp.cluster_id)
            .join(Org, Org.id == Cluster.org_id)
            .join(Environment, Environment.id == Cluster.environment_id)
            .where(Cluster.active.is_(True), ClusterApp.revision.is_not(None))
            .group_by(Org.name, Environment.name, ClusterApp.ready, ClusterApp.reason)
        )
        for org, env, ready, reason, n in cells:
            counts.cells[(org, env, _health(ready, reason))] += n
        clusters = await session.execute(
            select(Org.name, Environment.name, Cluster.sync_ready, func.count())
            .join(Org, Org.id == Cluster.org_id)
            .join(Environment, Environment.id == Cluster.environment_id)
            .where(Cluster.active.is_(True))
            .group_by(Org.name, Environment.name, Cluster.sync_ready)
        )
        for org, env, ready, n in clusters:
            counts.clusters[(org, env, _health(ready, None))] += n
    return counts
