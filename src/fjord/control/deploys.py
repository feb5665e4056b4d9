"""Deploy, promote, approve, roll back, undeploy, rotate: the requests that change what an
environment runs.

A request is checked, its inputs are pinned (the dynamic-config version and source revision of a
deploy; the release of a promotion or rollback) and it is queued as a :class:`Deployment` with
the caller's idempotency key, in one transaction. It is never refused for being busy: a newer
request of the same app and environment supersedes the queued older ones, and a worker in any
replica runs it (``worker.py``, steps in ``pipeline.py``). The functions return the queued
deployment at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fjord.control import (
    audit,
    builds,
    catalog,
    notifications,
    promotions,
    queries,
    rotation,
    states,
)
from fjord.control.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from fjord.control.models import (
    App,
    ConfigVersion,
    Deployment,
    Environment,
    Org,
    Release,
    TimelineEntry,
    utcnow,
)
from fjord.control.plane import ControlPlane
from fjord.control.roles import Actor, Role
from fjord.control.views import DeploymentView
from fjord.spec import DynamicConfig, SpecError

# The role each operation needs in the environment it acts on (the UI shows only the buttons
# these allow; the services below enforce them).
ROLE_FOR = {
    "deploy": Role.developer,
    "promote": Role.developer,
    "rotate": Role.developer,
    "rollback": Role.app_admin,
    "undeploy": Role.app_admin,
    "approve": Role.app_admin,
}


def allowed_actions(actor: Actor, org: str, environment: str) -> frozenset[str]:
    return frozenset(a for a, role in ROLE_FOR.items() if actor.can(org, role, environment))


async def _view(plane: ControlPlane, deployment_id: int) -> DeploymentView:
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        return await queries.deployment_view(session, deployment)


async def _resolve(
    plane: ControlPlane, actor: Actor, full_name: str, environment: str, role: Role
) -> tuple[catalog.AppRef, Environment]:
    org_name, app_name = catalog.split_app(full_name)
    actor.require(org_name, role, environment)
    async with plane.db.session() as session:
        ref = await catalog.app(session, org_name, app_name)
        env = await catalog.environment(session, environment)
        if not await catalog.clusters(session, ref.org.id, env.id):
            raise InvalidError(
                f"org {org_name} has no clusters in {environment}",
                hint="add them to the platform config (orgs.<org>.clusters)",
            )
    return ref, env


async def _latest_config(session: AsyncSession, app_id: int) -> ConfigVersion | None:
    return (
        await session.scalars(
            select(ConfigVersion)
            .where(ConfigVersion.app_id == app_id)
            .order_by(ConfigVersion.version.desc())
            .limit(1)
        )
    ).one_or_none()


async def _by_key(session: AsyncSession, app_id: int, key: str | None) -> Deployment | None:
    if key is None:
        return None
    return (
        await session.scalars(
            select(Deployment).where(Deployment.app_id == app_id, Deployment.idempotency_key == key)
        )
    ).one_or_none()


def _same_request(found: Deployment, kind: str, environment: Environment, key: str | None) -> int:
    if (found.kind, found.environment_id) != (kind, environment.id):
        raise ConflictError(
            f"idempotency key {key!r} was used for deployment {found.id} "
            f"({found.kind}), not for this request"
        )
    return found.id


async def _lock_app(session: AsyncSession, app_id: int) -> None:
    """Requests for one app commit one after the other, in the order of their ids (PostgreSQL:
    a row lock until commit; SQLite has one writer anyway)."""
    await session.execute(select(App.id).where(App.id == app_id).with_for_update())


async def _queue(
    session: AsyncSession,
    actor: Actor,
    ref: catalog.AppRef,
    environment: Environment,
    kind: str,
    key: str | None,
    *,
    release_id: int | None = None,
    config_version: int | None = None,
    source: Pinned | None = None,
) -> Deployment:
    """Record the request as queued; older queued requests of the app+env are superseded.

    The app is locked first (:func:`_lock_app`): a worker never sees a newer request before an
    older one, so request order is id order.
    """
    await _lock_app(session, ref.app.id)
    now = utcnow()
    row = Deployment(
        app_id=ref.app.id,
        environment_id=environment.id,
        release_id=release_id,
        kind=kind,
        state=states.QUEUED,
        requested_by=actor.name,
        requested_by_identity=actor.identity,
        idempotency_key=key,
        config_version=config_version,
        source_revision=source.commit if source else None,
        source_ref=source.ref if source else None,
        source_version=source.version if source else None,
        image=source.image if source else None,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    pinned = []
    if config_version is not None:
        pinned.append(f"config v{config_version}")
    if source is not None:
        pinned.append(f"{source.ref} at {source.commit[:12]}")
    session.add(
        TimelineEntry(
            deployment_id=row.id,
            reason="requested",
            message=f"{kind} to {environment.name} requested by {actor.name}"
            + (f" ({', '.join(pinned)})" if pinned else ""),
        )
    )
    await session.execute(
        update(Deployment)
        .where(
            Deployment.app_id == ref.app.id,
            Deployment.environment_id == environment.id,
            Deployment.id < row.id,
            # Waiting for a delivery window is waiting too: the newest request goes when it opens.
            Deployment.state.in_((states.QUEUED, states.WAITING_WINDOW)),
        )
        .values(
            state=states.SUPERSEDED,
            reason=f"superseded by deployment {row.id} before it started",
            finished_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    notifications.emit(session, row.id, notifications.QUEUED, f"{kind} requested by {actor.name}")
    audit.record(
        session,
        actor,
        f"deployment.{kind}",
        f"{ref.full_name}@{environment.name}",
        org=ref.org.name,
        deployment=row.id,
        idempotency_key=key,
    )
    return row


async def _request(
    plane: ControlPlane,
    actor: Actor,
    ref: catalog.AppRef,
    environment: Environment,
    kind: str,
    key: str | None,
    *,
    release_id: int | None = None,
    source: Pinned | None = None,
) -> DeploymentView:
    """Queue a request once per idempotency key; the config version is the latest now."""
    async with plane.db.session() as session:
        found = await _by_key(session, ref.app.id, key)
        if found is not None:
            return await _view(plane, _same_request(found, kind, environment, key))
    try:
        async with plane.db.session() as session:
            await _lock_app(session, ref.app.id)
            config = await _latest_config(session, ref.app.id) if kind == states.DEPLOY else None
            row = await _queue(
                session,
                actor,
                ref,
                environment,
                kind,
                key,
                release_id=release_id,
                config_version=config.version if config else None,
                source=source,
            )
    except IntegrityError:
        # The same key raced in from another request: that one is the deployment.
        async with plane.db.session() as session:
            found = await _by_key(session, ref.app.id, key)
            if found is None:
                raise
            return await _view(plane, _same_request(found, kind, environment, key))
    plane.work_queued()
    return await _view(plane, row.id)


@dataclass(frozen=True)
class Pinned:
    """A deploy's source, fixed when it is requested: the ref asked for, its commit, the
    version ``{version}`` in the image takes, and an image CI named (if any)."""

    ref: str
    commit: str
    version: str | None
    image: str | None


async def _pin(
    plane: ControlPlane,
    ref: catalog.AppRef,
    git_ref: str | None,
    image: str | None,
    commit: str | None = None,
) -> Pinned:
    """Resolve ``git_ref`` (None: the default branch) to a commit now; a bad ref or credential
    is refused here, before anything is queued. With ``commit`` (a webhook's pushed commit),
    that commit is pinned and ``git_ref`` is only recorded as where it came from."""
    resolved = await builds.resolve(plane, ref, commit or git_ref)
    named = git_ref if commit and git_ref else resolved.ref
    return Pinned(named, resolved.commit, builds.image_version(resolved), image)


async def _running_commit(plane: ControlPlane, ref: catalog.AppRef, env: Environment) -> str | None:
    """The commit of the release last ready in ``env`` (what a rotation rebuilds)."""
    async with plane.db.session() as session:
        release = await _latest_ready_release(session, ref.app.id, env.id)
    return release.commit if release is not None else None


async def queue_pushed(
    session: AsyncSession,
    actor: Actor,
    ref: catalog.AppRef,
    source: Pinned,
    *,
    environment: str | None,
    key: str,
) -> str:
    """Queue, in the caller's transaction (a webhook delivery's), the build of a pushed tag
    (``environment`` None: a ``build`` job) or the deploy of a pushed branch head into
    ``environment``, with the config as it is now. Nothing is fetched here (the worker's build
    step does that), so the delivery is answered at once and the work is already durable.
    Returns what happened, for the delivery's record."""
    await _lock_app(session, ref.app.id)
    if await _by_key(session, ref.app.id, key) is not None:
        return "already queued"
    config = await _latest_config(session, ref.app.id)
    version = config.version if config else None
    if environment is None:
        row = _build_job(actor, ref, source, key, version)
        session.add(row)
        await session.flush()
        session.add(
            TimelineEntry(
                deployment_id=row.id,
                reason="requested",
                message=f"build of {source.ref} at {source.commit[:12]} requested by "
                f"{actor.name} (config v{version or 0})",
            )
        )
        audit.record(
            session,
            actor,
            "release.create",
            ref.full_name,
            org=ref.org.name,
            ref=source.ref,
            commit=source.commit,
            deployment=row.id,
        )
        return f"build {row.id} queued"
    try:
        env = await catalog.environment(session, environment)
    except NotFoundError:  # the platform config dropped it since the rule was set
        return f"environment {environment!r} does not exist: nothing queued"
    if not await catalog.clusters(session, ref.org.id, env.id):
        return f"org {ref.org.name} has no clusters in {environment}: nothing queued"
    row = await _queue(
        session, actor, ref, env, states.DEPLOY, key, config_version=version, source=source
    )
    return f"deployment {row.id} queued"


def _build_job(
    actor: Actor, ref: catalog.AppRef, source: Pinned, key: str, config_version: int | None
) -> Deployment:
    now = utcnow()
    return Deployment(
        app_id=ref.app.id,
        environment_id=None,
        kind=states.BUILD,
        state=states.QUEUED,
        requested_by=actor.name,
        idempotency_key=key,
        config_version=config_version,
        source_revision=source.commit,
        source_ref=source.ref,
        source_version=source.version,
        image=source.image,
        created_at=now,
        updated_at=now,
    )


# ---- requests --------------------------------------------------------------------------------


async def deploy(
    plane: ControlPlane,
    actor: Actor,
    full_name: str,
    environment: str,
    *,
    git_ref: str | None = None,
    release_id: int | None = None,
    image: str | None = None,
    commit: str | None = None,
    idempotency_key: str | None = None,
) -> DeploymentView:
    """Queue building the app's repository at ``git_ref`` (a tag, branch or commit; None: the
    head of its default branch) with its current config, or deploying release ``release_id``;
    publishing it and pointing ``environment`` at it. The ref is pinned to its commit now.
    Into an environment that needs approval it waits."""
    if git_ref is not None and release_id is not None:
        raise InvalidError("deploy either a ref or a release, not both")
    ref, env = await _resolve(plane, actor, full_name, environment, ROLE_FOR["deploy"])
    if release_id is not None:
        async with plane.db.session() as session:
            existing = await session.get(Release, release_id)
        if existing is None or existing.app_id != ref.app.id:
            raise NotFoundError(f"{full_name} has no release {release_id}")
        if env.name not in existing.environments:
            raise InvalidError(f"release {release_id} has no manifests for {env.name}")
        return await _request(
            plane, actor, ref, env, states.DEPLOY, idempotency_key, release_id=release_id
        )
    source = await _pin(plane, ref, git_ref, image, commit)
    return await _request(plane, actor, ref, env, states.DEPLOY, idempotency_key, source=source)


async def rotate(
    plane: ControlPlane,
    actor: Actor,
    full_name: str,
    environment: str,
    *,
    reason: str = "rotate credentials",
    idempotency_key: str | None = None,
) -> DeploymentView:
    """New PostgreSQL and Redis credentials in one environment: a new config version with the
    rotation counter raised and a deployment pinned to it, in one transaction (no lost update:
    a concurrent config write makes this one retry on the newer version)."""
    ref, env = await _resolve(plane, actor, full_name, environment, ROLE_FOR["rotate"])
    if not reason.strip():
        raise InvalidError("say why the credentials rotate (--reason)")
    # The same source as what runs there now; only the config changes.
    source = await _pin(plane, ref, await _running_commit(plane, ref, env), None)
    async with plane.db.session() as session:
        found = await _by_key(session, ref.app.id, idempotency_key)
        if found is not None:
            return await _view(plane, _same_request(found, states.ROTATE, env, idempotency_key))
    for attempt in range(10):
        try:
            async with plane.db.session() as session:
                await _lock_app(session, ref.app.id)
                current = await _latest_config(session, ref.app.id)
                values, counter = rotation.raised(current.values if current else {}, env.name)
                try:
                    DynamicConfig(version=0, values=values)
                except SpecError as exc:
                    raise InvalidError(str(exc)) from exc
                why = f"{reason} ({env.name}: {rotation.ROTATION} {counter})"
                config = ConfigVersion(
                    app_id=ref.app.id,
                    version=(current.version if current else 0) + 1,
                    values=values,
                    author=actor.name,
                    reason=why,
                )
                session.add(config)
                await session.flush()
                audit.record(
                    session,
                    actor,
                    "config.set",
                    ref.full_name,
                    org=ref.org.name,
                    version=config.version,
                    reason=why,
                )
                row = await _queue(
                    session,
                    actor,
                    ref,
                    env,
                    states.ROTATE,
                    idempotency_key,
                    config_version=config.version,
                    source=source,
                )
            break
        except IntegrityError:
            async with plane.db.session() as session:
                found = await _by_key(session, ref.app.id, idempotency_key)
            if found is not None:
                return await _view(plane, _same_request(found, states.ROTATE, env, idempotency_key))
            if attempt == 9:
                raise ConflictError(
                    f"the config of {full_name} kept changing while rotating",
                    hint="retry the rotation",
                ) from None
            await asyncio.sleep(0.01 * (attempt + 1))
    plane.work_queued()
    return await _view(plane, row.id)


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
    """Queue pointing the next environment (``to``) at the release ready in the one before.

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
    ref, env = await _resolve(plane, actor, full_name, to, ROLE_FOR["promote"])
    # Healthy in the environment before for the target's promotion soak (promotions.py).
    verified = await promotions.check(plane, actor, full_name, to)
    promotions.require(verified)
    assert verified.release_id is not None
    return await _request(
        plane, actor, ref, env, states.PROMOTE, idempotency_key, release_id=verified.release_id
    )


async def approve(plane: ControlPlane, actor: Actor, deployment_id: int) -> DeploymentView:
    """An app-admin lets a deployment that awaits approval go ahead: it is queued again and a
    worker continues it after its approval step."""
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, deployment_id)
        if deployment is None:
            raise NotFoundError(f"no deployment {deployment_id}")
        app = await session.get(App, deployment.app_id)
        assert app is not None
        org = await session.get(Org, app.org_id)
        assert org is not None
        env = (
            await session.get(Environment, deployment.environment_id)
            if deployment.environment_id is not None
            else None
        )
    if actor.role_in(org.name) is None:
        raise NotFoundError(f"no deployment {deployment_id}")
    if env is None:
        raise InvalidError(f"deployment {deployment_id} is a {deployment.kind}: nothing to approve")
    if not actor.can(org.name, ROLE_FOR["approve"], env.name):
        raise ForbiddenError(
            f"approving needs the app-admin role in org {org.name!r} in {env.name}"
        )
    if plane.settings.four_eyes(env.name) and deployment.requested_by_identity == actor.identity:
        raise ForbiddenError(
            f"{env.name} needs four eyes: {actor.name} requested deployment {deployment_id},"
            " so another app-admin must approve it"
        )
    async with plane.db.session() as session:
        approved = await session.execute(
            update(Deployment)
            .where(Deployment.id == deployment_id, Deployment.state == states.AWAITING_APPROVAL)
            .values(state=states.QUEUED, approved_by=actor.name, updated_at=utcnow())
        )
        if approved.rowcount != 1:  # type: ignore[attr-defined]
            raise ConflictError(
                f"deployment {deployment_id} is {deployment.state}, not awaiting approval"
            )
        session.add(
            TimelineEntry(
                deployment_id=deployment_id, reason="approved", message=f"approved by {actor.name}"
            )
        )
        audit.record(
            session,
            actor,
            "deployment.approve",
            f"{org.name}/{app.name}@{env.name}",
            org=org.name,
            deployment=deployment_id,
        )
    plane.work_queued()
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
    """Queue pointing ``environment`` at an earlier release (``to``: a digest or prefix;
    default: the release that was ready there before the current one)."""
    ref, env = await _resolve(plane, actor, full_name, environment, ROLE_FOR["rollback"])
    async with plane.db.session() as session:
        if to is not None:
            release = await queries.find_release(session, ref.app.id, to)
        else:
            release = await _previous_release(session, ref.app.id, env.id)
    if env.name not in release.environments:
        raise InvalidError(f"release {release.digest} has no manifests for {env.name}")
    return await _request(
        plane, actor, ref, env, states.ROLLBACK, idempotency_key, release_id=release.id
    )


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
    """Queue removing the app from the org's sync root there; Flux prunes it everywhere."""
    ref, env = await _resolve(plane, actor, full_name, environment, ROLE_FOR["undeploy"])
    return await _request(plane, actor, ref, env, states.UNDEPLOY, idempotency_key)


async def queued(plane: ControlPlane) -> int:
    """How many deployments wait for a worker (queued or being published)."""
    async with plane.db.session() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Deployment)
            .where(Deployment.state.in_((states.QUEUED, states.PUBLISHING)))
        )
    return int(count or 0)
