"""Promotion verification: a release moves to the next environment only once it has been
healthy in the one before for that environment's ``promotionSoakSeconds``.

Healthy means: the app's latest ready deployment there carries the release, and every cluster
of the environment reports that digest applied and Ready now. It has been so since that
deployment became ready. The API, CLI and UI all ask :func:`check`; ``deploys.promote`` refuses
(409, with ``remaining_seconds``) what it does not allow.
"""

from __future__ import annotations

import datetime as dt
import math

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fjord.control import catalog, states
from fjord.control.errors import ConflictError, InvalidError, NotFoundError
from fjord.control.models import ClusterApp, Deployment, Environment, Release, utcnow
from fjord.control.plane import ControlPlane
from fjord.control.roles import Actor, Role
from fjord.control.views import PromotionView


def remaining_seconds(healthy_since: dt.datetime, soak_seconds: int, now: dt.datetime) -> int:
    """Whole seconds until the soak is over (0: over), rounded up so 0 really means done."""
    left = (healthy_since + dt.timedelta(seconds=soak_seconds) - now).total_seconds()
    return max(0, math.ceil(left))


async def _ready_deployment(session: AsyncSession, app_id: int, env_id: int) -> Deployment | None:
    deployment = (
        await session.scalars(
            select(Deployment)
            .where(
                Deployment.app_id == app_id,
                Deployment.environment_id == env_id,
                Deployment.state == states.READY,
            )
            .order_by(Deployment.id.desc())
            .limit(1)
        )
    ).one_or_none()
    if deployment is None or deployment.kind == states.UNDEPLOY:
        return None
    return deployment


async def _unhealthy(
    session: AsyncSession, org_id: int, app_id: int, env: Environment, digest: str
) -> list[str]:
    """Clusters of the environment that do not report the digest applied and Ready now."""
    cells = {
        r.cluster_id: r
        for r in (await session.scalars(select(ClusterApp).where(ClusterApp.app_id == app_id)))
    }
    problems = []
    for cluster in await catalog.clusters(session, org_id, env.id):
        cell = cells.get(cluster.id)
        if cell is None or cell.applied_digest != digest or cell.ready is not True:
            detail = cell.message if cell is not None and cell.message else "not running it"
            problems.append(f"{cluster.id}: {detail}")
    return problems


async def check(plane: ControlPlane, actor: Actor, full_name: str, to: str) -> PromotionView:
    org_name, _ = catalog.split_app(full_name)
    actor.require(org_name, Role.developer)
    async with plane.db.session() as session:
        order = await catalog.environments(session)
        names = [e.name for e in order]
        if to not in names:
            raise NotFoundError(f"unknown environment {to!r}", hint=f"known: {', '.join(names)}")
        index = names.index(to)
        if index == 0:
            raise InvalidError(f"{to} is the first environment; deploy to it instead")
        source = order[index - 1]
        ref = await catalog.app(session, org_name, full_name.split("/", 1)[1])
        soak = plane.settings.platform.environment(to).promotion_soak_seconds
        view = PromotionView(
            app=full_name,
            from_environment=source.name,
            to_environment=to,
            promotable=False,
            soak_seconds=soak,
        )
        deployment = await _ready_deployment(session, ref.app.id, source.id)
        if deployment is None or deployment.release_id is None:
            view.reason = f"nothing is ready in {source.name} to promote"
            return view
        release = await session.get(Release, deployment.release_id)
        assert release is not None
        view.digest, view.release_id = release.digest, release.id
        view.healthy_since = deployment.finished_at or deployment.updated_at
        unhealthy = await _unhealthy(session, ref.org.id, ref.app.id, source, release.digest)
    if unhealthy:
        view.reason = f"not healthy in {source.name} now: {'; '.join(unhealthy)}"
        view.remaining_seconds = soak
        return view
    view.remaining_seconds = remaining_seconds(view.healthy_since, soak, utcnow())
    if view.remaining_seconds > 0:
        view.reason = (
            f"healthy in {source.name} since {view.healthy_since:%Y-%m-%d %H:%M:%S} UTC;"
            f" {to} asks for {soak}s: {view.remaining_seconds}s remain"
        )
        return view
    view.promotable = True
    return view


def require(view: PromotionView) -> None:
    """Refuse a promotion :func:`check` does not allow (409 with the seconds that remain)."""
    if view.promotable:
        return
    if view.digest is None:
        raise InvalidError(
            view.reason or "nothing to promote",
            hint=f"deploy {view.app} to {view.from_environment} and wait until it is ready",
        )
    raise ConflictError(
        f"{view.app} may not be promoted to {view.to_environment} yet: {view.reason}",
        hint=f"try again in {view.remaining_seconds}s (fjord promotion {view.app}"
        f" --to {view.to_environment})",
        remaining_seconds=view.remaining_seconds,
    )
