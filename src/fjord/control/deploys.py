"""Deploy, promote, approve, roll back, undeploy: every change of what an environment runs.

Each operation records a :class:`Deployment` first (with the caller's idempotency key), then
works under a per app+environment lease so concurrent requests run one after the other, and
writes its progress (``step``) as it goes, so a restart can resume or fail it with a reason.
Store-side order: push + sign → sync root → move the environment tag (see ``publishing``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fjord.control import audit, catalog, locks, publishing, queries, receivers, states
from fjord.control.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from fjord.control.models import (
    App,
    ConfigVersion,
    Deployment,
    Environment,
    Lock,
    Org,
    Placement,
    Release,
    TimelineEntry,
    utcnow,
)
from fjord.control.plane import ControlPlane
from fjord.control.progress import evaluate, finish
from fjord.control.roles import Actor, Role
from fjord.control.sources import source_revision, source_url
from fjord.control.views import DeploymentView
from fjord.releases import Release as BuiltRelease
from fjord.releases import build_release, repository
from fjord.spec import DynamicConfig

log = logging.getLogger(__name__)


# ---- bookkeeping ---------------------------------------------------------------------------


async def _view(plane: ControlPlane, deployment_id: int) -> DeploymentView:
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        return await queries.deployment_view(session, deployment)


async def _step(plane: ControlPlane, deployment_id: int, step: str, message: str) -> None:
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        deployment.step = step
        deployment.state = states.PUBLISHING
        deployment.updated_at = utcnow()
        session.add(TimelineEntry(deployment_id=deployment_id, reason=step, message=message))


async def _fail(plane: ControlPlane, deployment_id: int, reason: str) -> None:
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        finish(session, deployment, states.FAILED, reason)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def _create(
    plane: ControlPlane,
    actor: Actor,
    ref: catalog.AppRef,
    environment: Environment,
    kind: str,
    idempotency_key: str | None,
    *,
    release_id: int | None = None,
    state: str = states.QUEUED,
) -> tuple[int, bool]:
    """Record the request; returns (deployment id, True if it already existed for this key)."""

    async def existing(session: AsyncSession) -> Deployment | None:
        if idempotency_key is None:
            return None
        return (
            await session.scalars(
                select(Deployment).where(
                    Deployment.app_id == ref.app.id, Deployment.idempotency_key == idempotency_key
                )
            )
        ).one_or_none()

    def same(found: Deployment) -> tuple[int, bool]:
        if (found.kind, found.environment_id) != (kind, environment.id):
            raise ConflictError(
                f"idempotency key {idempotency_key!r} was used for deployment {found.id} "
                f"({found.kind}), not for this request"
            )
        return found.id, True

    async with plane.db.session() as session:
        found = await existing(session)
        if found is not None:
            return same(found)
    try:
        async with plane.db.session() as session:
            row = Deployment(
                app_id=ref.app.id,
                environment_id=environment.id,
                release_id=release_id,
                kind=kind,
                state=state,
                requested_by=actor.name,
                idempotency_key=idempotency_key,
                owner=locks.owner_id(),
            )
            session.add(row)
            await session.flush()
            session.add(
                TimelineEntry(
                    deployment_id=row.id,
                    reason="requested",
                    message=f"{kind} to {environment.name} requested by {actor.name}",
                )
            )
            audit.record(
                session,
                actor,
                f"deployment.{kind}",
                f"{ref.full_name}@{environment.name}",
                org=ref.org.name,
                deployment=row.id,
                idempotency_key=idempotency_key,
            )
            return row.id, False
    except IntegrityError:
        # The same key raced in from another request: that one is the deployment.
        async with plane.db.session() as session:
            found = await existing(session)
            if found is None:
                raise
            return same(found)


async def _resolve(
    plane: ControlPlane, actor: Actor, full_name: str, environment: str, role: Role
) -> tuple[catalog.AppRef, Environment]:
    org_name, app_name = catalog.split_app(full_name)
    actor.require(org_name, role)
    async with plane.db.session() as session:
        ref = await catalog.app(session, org_name, app_name)
        env = await catalog.environment(session, environment)
        if not await catalog.clusters(session, ref.org.id, env.id):
            raise InvalidError(
                f"org {org_name} has no clusters in {environment}",
                hint="add them to the platform config (orgs.<org>.clusters)",
            )
    return ref, env


def _lock_name(ref: catalog.AppRef, environment: Environment) -> str:
    return f"deploy:{ref.full_name}/{environment.name}"


# ---- building --------------------------------------------------------------------------------


async def _build(plane: ControlPlane, deployment_id: int, ref: catalog.AppRef) -> BuiltRelease:
    async with plane.db.session() as session:
        config = (
            await session.scalars(
                select(ConfigVersion)
                .where(ConfigVersion.app_id == ref.app.id)
                .order_by(ConfigVersion.version.desc())
                .limit(1)
            )
        ).one_or_none()
    dynamic = DynamicConfig(config.version, config.values) if config else DynamicConfig()
    directory = Path(ref.app.source)
    revision = await asyncio.to_thread(source_revision, directory)
    source = await asyncio.to_thread(source_url, directory)  # not the path: it is in the digest
    await _step(
        plane, deployment_id, "building", f"rendering {revision}, config v{dynamic.version}"
    )
    built = await asyncio.to_thread(
        build_release,
        directory,
        source=source,
        revision=revision,
        platform=plane.settings.platform,
        dynamic=dynamic,
    )
    async with plane.db.session() as session:
        release = (
            await session.scalars(
                select(Release).where(Release.app_id == ref.app.id, Release.digest == built.digest)
            )
        ).one_or_none()
        if release is None:
            release = Release(
                app_id=ref.app.id,
                digest=built.digest,
                source=built.source,
                revision=built.revision,
                config_version=built.dynamic_version,
                builder=built.builder,
                environments=list(built.environments),
                files={p: data.decode() for p, data in built.files().items()},
                config=dict(dynamic.values),
            )
            session.add(release)
            await session.flush()
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        deployment.release_id = release.id
    return built


# ---- pointing an environment at a release ----------------------------------------------------


async def _targets(
    session: AsyncSession, plane: ControlPlane, org_id: int, env_id: int
) -> list[receivers.Target]:
    return [
        receivers.Target(c.id, c.receiver_url, plane.cipher.decrypt(c.token_cipher))
        for c in await catalog.clusters(session, org_id, env_id)
        if c.receiver_url and c.token_cipher
    ]


async def _start_following(
    plane: ControlPlane, deployment_id: int, published_at: dt.datetime
) -> None:
    """The store side is done: supersede older work, evaluate, and nudge the clusters."""
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        app = await session.get(App, deployment.app_id)
        assert app is not None
        await session.execute(
            update(Deployment)
            .where(
                Deployment.app_id == deployment.app_id,
                Deployment.environment_id == deployment.environment_id,
                Deployment.id != deployment.id,
                Deployment.state.in_([states.PROGRESSING, states.AWAITING_APPROVAL]),
            )
            .values(
                state=states.SUPERSEDED,
                reason=f"superseded by deployment {deployment.id}",
                finished_at=published_at,
                updated_at=published_at,
            )
        )
        deployment.state = states.PROGRESSING
        deployment.step = "following"
        deployment.published_at = published_at
        deployment.deadline = published_at + dt.timedelta(
            seconds=plane.settings.deploy_timeout_seconds
        )
        deployment.updated_at = utcnow()
        deployment.owner = None
        await evaluate(session, deployment)
        targets = await _targets(session, plane, app.org_id, deployment.environment_id)
    outcomes = await receivers.trigger(targets)
    if outcomes:
        async with plane.db.session() as session:
            for outcome in outcomes:
                session.add(
                    TimelineEntry(
                        deployment_id=deployment_id,
                        cluster_id=outcome.cluster,
                        severity="info" if outcome.ok else "warning",
                        reason="receiver",
                        message=outcome.detail,
                    )
                )


async def _point(plane: ControlPlane, deployment_id: int) -> None:
    """Sync root lists the app, then the environment tag moves to the release's digest."""
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        release = await session.get(Release, deployment.release_id)
        app = await session.get(App, deployment.app_id)
        env = await session.get(Environment, deployment.environment_id)
        assert release is not None and app is not None and env is not None  # noqa: PT018
        org = await session.get(Org, app.org_id)
        assert org is not None
        if await session.get(Placement, (app.id, env.id)) is None:
            session.add(Placement(app_id=app.id, environment_id=env.id))
    if env.name not in release.environments:
        raise InvalidError(f"release {release.digest} has no manifests for {env.name}")
    await _step(plane, deployment_id, "sync-root", f"listing {app.name} in {org.name}/{env.name}")
    await publishing.publish_sync_root(plane, org.id, org.name, env.id, env.name)
    await _step(plane, deployment_id, "tagging", f"moving tag {env.name} to {release.digest}")
    published_at = utcnow()
    await publishing.move_tag(
        plane, org.name, repository(org.name, app.name), release.digest, env.name
    )
    await _start_following(plane, deployment_id, published_at)


async def _guarded(plane: ControlPlane, deployment_id: int, work: Awaitable[None]) -> None:
    """Run a deployment's store work; any failure fails the deployment with the cause."""
    try:
        await work
    except Exception as exc:
        async with plane.db.session() as session:
            deployment = await session.get(Deployment, deployment_id)
            step = deployment.step if deployment else None
        log.warning("deployment %s failed while %s", deployment_id, step, exc_info=True)
        await _fail(plane, deployment_id, f"{step or 'starting'}: {_describe(exc)}")


# ---- operations ------------------------------------------------------------------------------


async def deploy(
    plane: ControlPlane,
    actor: Actor,
    full_name: str,
    environment: str,
    *,
    idempotency_key: str | None = None,
) -> DeploymentView:
    """Build the app at its current source revision and config, publish it, point ``environment``
    at it. Into an environment that needs approval, the release is published but waits."""
    ref, env = await _resolve(plane, actor, full_name, environment, Role.developer)
    deployment_id, existed = await _create(plane, actor, ref, env, states.DEPLOY, idempotency_key)
    if existed:
        return await _view(plane, deployment_id)

    async def publish_and_point() -> None:
        built = await _build(plane, deployment_id, ref)
        await _step(plane, deployment_id, "pushing", f"pushing and signing {built.digest}")
        await publishing.push_release(plane, ref.org.name, built)
        if plane.settings.needs_approval(env.name):
            await _await_approval(plane, deployment_id, env.name)
            return
        await _point(plane, deployment_id)

    return await _run_locked(plane, ref, env, deployment_id, publish_and_point)


async def _run_locked(
    plane: ControlPlane,
    ref: catalog.AppRef,
    env: Environment,
    deployment_id: int,
    step: Callable[[], Awaitable[None]],
) -> DeploymentView:
    """Run a deployment's store work under its app+environment lease; a failure fails it."""

    async def work() -> None:
        async with locks.hold(plane.db, _lock_name(ref, env)):
            await step()

    await _guarded(plane, deployment_id, work())
    return await _view(plane, deployment_id)


async def _await_approval(plane: ControlPlane, deployment_id: int, environment: str) -> None:
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        deployment.state = states.AWAITING_APPROVAL
        deployment.step = None
        deployment.owner = None
        deployment.updated_at = utcnow()
        session.add(
            TimelineEntry(
                deployment_id=deployment_id,
                reason="awaiting-approval",
                message=f"{environment} needs an app-admin's approval",
            )
        )


async def _latest_ready_release(session: AsyncSession, app_id: int, env_id: int) -> Release | None:
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
    return await session.get(Release, deployment.release_id)


async def promote(
    plane: ControlPlane,
    actor: Actor,
    full_name: str,
    *,
    to: str | None = None,
    idempotency_key: str | None = None,
) -> DeploymentView:
    """Point the next environment (or ``to``) at the release that is ready in the one before.

    The same digest, so the same bytes: only the target's tag moves. Waits for approval where
    the environment needs it.
    """
    org_name, _ = catalog.split_app(full_name)
    actor.require(org_name, Role.developer)
    async with plane.db.session() as session:
        order = await catalog.environments(session)
    names = [e.name for e in order]
    if to is None:
        raise InvalidError("say which environment to promote to (--to)", hint=f"one of {names[1:]}")
    if to not in names:
        raise NotFoundError(f"unknown environment {to!r}", hint=f"known: {', '.join(names)}")
    index = names.index(to)
    if index == 0:
        raise InvalidError(f"{to} is the first environment; deploy to it instead")
    source = order[index - 1]
    ref, env = await _resolve(plane, actor, full_name, to, Role.developer)
    async with plane.db.session() as session:
        release = await _latest_ready_release(session, ref.app.id, source.id)
    if release is None:
        raise InvalidError(
            f"nothing is ready in {source.name} to promote",
            hint=f"deploy {full_name} to {source.name} and wait until it is ready",
        )
    needs_approval = plane.settings.needs_approval(env.name)
    deployment_id, existed = await _create(
        plane,
        actor,
        ref,
        env,
        states.PROMOTE,
        idempotency_key,
        release_id=release.id,
        state=states.QUEUED,
    )
    if existed:
        return await _view(plane, deployment_id)
    if needs_approval:
        await _await_approval(plane, deployment_id, env.name)
        return await _view(plane, deployment_id)

    return await _run_locked(plane, ref, env, deployment_id, lambda: _point(plane, deployment_id))


async def approve(plane: ControlPlane, actor: Actor, deployment_id: int) -> DeploymentView:
    """An app-admin lets a deployment that awaits approval go ahead."""
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, deployment_id)
        if deployment is None:
            raise NotFoundError(f"no deployment {deployment_id}")
        app = await session.get(App, deployment.app_id)
        env = await session.get(Environment, deployment.environment_id)
        assert app is not None and env is not None  # noqa: PT018
        org = await session.get(Org, app.org_id)
        assert org is not None
    if actor.role_in(org.name) is None:
        raise NotFoundError(f"no deployment {deployment_id}")
    if not actor.can(org.name, Role.app_admin):
        raise ForbiddenError(f"approving needs the app-admin role in org {org.name!r}")
    ref = catalog.AppRef(org, app)
    async with locks.hold(plane.db, _lock_name(ref, env)):
        async with plane.db.session() as session:
            claimed = await session.execute(
                update(Deployment)
                .where(
                    Deployment.id == deployment_id,
                    Deployment.state == states.AWAITING_APPROVAL,
                )
                .values(
                    state=states.PUBLISHING,
                    approved_by=actor.name,
                    owner=locks.owner_id(),
                    updated_at=utcnow(),
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                raise ConflictError(
                    f"deployment {deployment_id} is {deployment.state}, not awaiting approval"
                )
            session.add(
                TimelineEntry(
                    deployment_id=deployment_id,
                    reason="approved",
                    message=f"approved by {actor.name}",
                )
            )
            audit.record(
                session,
                actor,
                "deployment.approve",
                f"{ref.full_name}@{env.name}",
                org=org.name,
                deployment=deployment_id,
            )
        await _guarded(plane, deployment_id, _point(plane, deployment_id))
    return await _view(plane, deployment_id)


async def rollback(
    plane: ControlPlane,
    actor: Actor,
    full_name: str,
    environment: str,
    *,
    to: str | None = None,
    idempotency_key: str | None = None,
) -> DeploymentView:
    """Point ``environment`` at an earlier release (``to``: a digest or prefix; default: the
    release that was ready there before the current one). Recorded as a deployment."""
    ref, env = await _resolve(plane, actor, full_name, environment, Role.app_admin)
    async with plane.db.session() as session:
        if to is not None:
            release = await queries.find_release(session, ref.app.id, to)
        else:
            release = await _previous_release(session, ref.app.id, env.id)
    if env.name not in release.environments:
        raise InvalidError(f"release {release.digest} has no manifests for {env.name}")
    deployment_id, existed = await _create(
        plane, actor, ref, env, states.ROLLBACK, idempotency_key, release_id=release.id
    )
    if existed:
        return await _view(plane, deployment_id)

    return await _run_locked(plane, ref, env, deployment_id, lambda: _point(plane, deployment_id))


async def _previous_release(session: AsyncSession, app_id: int, env_id: int) -> Release:
    rows = (
        await session.scalars(
            select(Deployment)
            .where(
                Deployment.app_id == app_id,
                Deployment.environment_id == env_id,
                Deployment.release_id.is_not(None),
                Deployment.state.in_([states.READY, states.PROGRESSING, states.FAILED]),
            )
            .order_by(Deployment.id.desc())
            .limit(200)
        )
    ).all()
    if not rows:
        raise InvalidError("nothing was deployed here to roll back")
    current = rows[0].release_id
    for row in rows[1:]:
        if row.state == states.READY and row.release_id != current:
            release = await session.get(Release, row.release_id)
            assert release is not None
            return release
    raise InvalidError("no earlier ready release to roll back to", hint="name one with --to DIGEST")


async def undeploy(
    plane: ControlPlane,
    actor: Actor,
    full_name: str,
    environment: str,
    *,
    idempotency_key: str | None = None,
) -> DeploymentView:
    """Remove the app from the org's sync root there; Flux prunes it from every cluster."""
    ref, env = await _resolve(plane, actor, full_name, environment, Role.app_admin)
    deployment_id, existed = await _create(plane, actor, ref, env, states.UNDEPLOY, idempotency_key)
    if existed:
        return await _view(plane, deployment_id)

    return await _run_locked(plane, ref, env, deployment_id, lambda: _unpoint(plane, deployment_id))


async def _unpoint(plane: ControlPlane, deployment_id: int) -> None:
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        app = await session.get(App, deployment.app_id)
        env = await session.get(Environment, deployment.environment_id)
        assert app is not None and env is not None  # noqa: PT018
        org = await session.get(Org, app.org_id)
        assert org is not None
        placement = await session.get(Placement, (app.id, env.id))
        if placement is not None:
            await session.delete(placement)
    await _step(
        plane, deployment_id, "sync-root", f"removing {app.name} from {org.name}/{env.name}"
    )
    published_at = utcnow()
    digest = await publishing.publish_sync_root(plane, org.id, org.name, env.id, env.name)
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        deployment.sync_digest = digest
    await _start_following(plane, deployment_id, published_at)


# ---- restart recovery -----------------------------------------------------------------------


async def recover(plane: ControlPlane) -> list[int]:
    """Finish or fail deployments whose process died mid-way; returns the ids handled.

    Steps before the release is in the store cannot be resumed without rebuilding, so they
    fail with a reason (safe to retry: the same inputs give the same digest). From ``sync-root``
    on, every step is idempotent and is simply run again.
    """
    async with plane.db.session() as session:
        stuck = (
            await session.scalars(
                select(Deployment).where(
                    Deployment.state.in_([states.QUEUED, states.PUBLISHING]),
                    Deployment.owner.is_not(None),
                )
            )
        ).all()
    handled: list[int] = []
    me = locks.owner_id()
    for deployment in stuck:
        if deployment.owner is None or locks.owner_alive(deployment.owner):
            continue
        async with plane.db.session() as session:
            claimed = await session.execute(
                update(Deployment)
                .where(Deployment.id == deployment.id, Deployment.owner == deployment.owner)
                .values(owner=me)
            )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another process is recovering it
        handled.append(deployment.id)
        await _release_dead_locks(plane, deployment.owner)
        resumable = deployment.step in ("sync-root", "tagging") and deployment.release_id
        if resumable and deployment.kind != states.UNDEPLOY:
            await _resume(plane, deployment.id, "resumed after a restart")
            await _guarded(plane, deployment.id, _point(plane, deployment.id))
        elif deployment.step == "sync-root" and deployment.kind == states.UNDEPLOY:
            await _resume(plane, deployment.id, "resumed after a restart")
            await _guarded(plane, deployment.id, _unpoint(plane, deployment.id))
        else:
            await _fail(
                plane,
                deployment.id,
                f"interrupted while {deployment.step or 'queued'}: the control plane stopped "
                "before the release was published; nothing was moved, safe to retry",
            )
    return handled


async def _resume(plane: ControlPlane, deployment_id: int, message: str) -> None:
    async with plane.db.session() as session:
        session.add(TimelineEntry(deployment_id=deployment_id, reason="resumed", message=message))


async def _release_dead_locks(plane: ControlPlane, owner: str) -> None:
    async with plane.db.session() as session:
        rows = (await session.scalars(select(Lock).where(Lock.owner == owner))).all()
        for row in rows:
            await session.delete(row)
