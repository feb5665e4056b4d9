"""From what clusters report to a deployment's state.

A deployment is ``ready`` when every active cluster of its environment runs its digest and
Flux called it healthy; ``failed`` as soon as one cluster reports an error for that digest (or
an error that names no revision, like a pull or verification failure) after the deployment was
published, or when the deadline passes. Evaluation is a pure read of the recorded cluster state,
so running it twice (replayed events, restarts) changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from fjord.control import catalog, notifications, states
from fjord.control.models import (
    App,
    Cluster,
    ClusterApp,
    Deployment,
    DeploymentCluster,
    Release,
    TimelineEntry,
    utcnow,
)


@dataclass(frozen=True)
class ClusterVerdict:
    state: str
    revision: str | None
    message: str | None


def app_verdict(row: ClusterApp | None, digest: str, since: dt.datetime) -> ClusterVerdict:
    if row is None:
        return ClusterVerdict(states.PENDING, None, "waiting for the cluster to report")
    if row.ready is True and row.applied_digest == digest:
        return ClusterVerdict(states.READY, row.applied_revision, row.message)
    if row.ready is False and row.digest in (digest, None) and row.updated_at >= since:
        return ClusterVerdict(states.FAILED, row.revision, row.message)
    return ClusterVerdict(states.PENDING, row.revision, row.message)


def _sync_verdict(cluster: Cluster, sync_digest: str) -> ClusterVerdict:
    applied = (cluster.sync_revision or "").endswith(sync_digest)
    if applied and cluster.sync_ready:
        return ClusterVerdict(states.READY, cluster.sync_revision, cluster.sync_message)
    if applied and cluster.sync_ready is False:
        return ClusterVerdict(states.FAILED, cluster.sync_revision, cluster.sync_message)
    return ClusterVerdict(states.PENDING, cluster.sync_revision, cluster.sync_message)


async def evaluate(session: AsyncSession, deployment: Deployment) -> None:
    """Update per-cluster rows and the deployment's state from the latest cluster reports."""
    if deployment.state != states.PROGRESSING or deployment.environment_id is None:
        return
    app = deployment.app_id
    app_row = await session.get(App, app)
    assert app_row is not None
    clusters = await catalog.clusters(session, app_row.org_id, deployment.environment_id)
    since = deployment.published_at or deployment.created_at
    verdicts: dict[str, ClusterVerdict] = {}
    if deployment.kind == states.UNDEPLOY:
        for cluster in clusters:
            verdicts[cluster.id] = _sync_verdict(cluster, deployment.sync_digest or "-")
    else:
        release = await session.get(Release, deployment.release_id)
        assert release is not None
        rows = {
            r.cluster_id: r
            for r in (
                await session.scalars(select(ClusterApp).where(ClusterApp.app_id == app))
            ).all()
        }
        for cluster in clusters:
            verdicts[cluster.id] = app_verdict(rows.get(cluster.id), release.digest, since)

    existing = {
        r.cluster_id: r
        for r in (
            await session.scalars(
                select(DeploymentCluster).where(DeploymentCluster.deployment_id == deployment.id)
            )
        ).all()
    }
    now = utcnow()
    for cluster_id, verdict in verdicts.items():
        row = existing.get(cluster_id)
        if row is None:
            row = DeploymentCluster(
                deployment_id=deployment.id, cluster_id=cluster_id, state="", updated_at=now
            )
            session.add(row)
        if row.state != verdict.state and verdict.state != states.PENDING:
            session.add(
                TimelineEntry(
                    deployment_id=deployment.id,
                    cluster_id=cluster_id,
                    at=now,
                    severity="error" if verdict.state == states.FAILED else "info",
                    reason=verdict.state,
                    message=verdict.message or verdict.state,
                )
            )
        if (row.state, row.revision, row.message) != (
            verdict.state,
            verdict.revision,
            verdict.message,
        ):
            row.state, row.revision, row.message = verdict.state, verdict.revision, verdict.message
            row.updated_at = now

    failed = [(c, v) for c, v in verdicts.items() if v.state == states.FAILED]
    if failed:
        cluster_id, verdict = failed[0]
        finish(session, deployment, states.FAILED, f"{cluster_id}: {verdict.message}")
    elif all(v.state == states.READY for v in verdicts.values()):
        finish(session, deployment, states.READY, None)
        if deployment.kind == states.UNDEPLOY:
            # The app is gone from these clusters; forget what they last reported about it.
            await session.execute(
                delete(ClusterApp).where(
                    ClusterApp.app_id == app, ClusterApp.cluster_id.in_(list(verdicts))
                )
            )


def finish(session: AsyncSession, deployment: Deployment, state: str, reason: str | None) -> None:
    now = utcnow()
    deployment.state = state
    deployment.reason = reason
    deployment.updated_at = now
    deployment.finished_at = now
    deployment.owner = None
    deployment.lease_expires = None
    session.add(
        TimelineEntry(
            deployment_id=deployment.id,
            at=now,
            severity="error" if state == states.FAILED else "info",
            reason=state,
            message=reason
            or ("every cluster runs the release" if state == states.READY else state),
        )
    )
    if state in (states.READY, states.FAILED):
        kind = notifications.READY if state == states.READY else notifications.FAILED
        notifications.emit(session, deployment.id, kind, reason or "every cluster runs the release")


async def expire(session: AsyncSession, now: dt.datetime | None = None) -> int:
    """Fail progressing deployments whose deadline passed, naming the clusters still pending."""
    moment = now or utcnow()
    overdue = (
        await session.scalars(
            select(Deployment).where(
                Deployment.state == states.PROGRESSING, Deployment.deadline < moment
            )
        )
    ).all()
    for deployment in overdue:
        await evaluate(session, deployment)
        if deployment.state != states.PROGRESSING:
            continue
        pending = (
            await session.scalars(
                select(DeploymentCluster).where(
                    DeploymentCluster.deployment_id == deployment.id,
                    DeploymentCluster.state != states.READY,
                )
            )
        ).all()
        waited = (moment - (deployment.published_at or deployment.created_at)).total_seconds()
        detail = "; ".join(f"{p.cluster_id}: {p.message or 'no report'}" for p in pending)
        finish(
            session,
            deployment,
            states.FAILED,
            f"timed out after {waited:.0f}s waiting for {detail or 'the clusters'}",
        )
    return len(overdue)
