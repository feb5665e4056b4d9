"""Read side: deployments with their per-cluster timeline, history, the status matrix, diffs."""

from __future__ import annotations

import difflib
import json

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from fjord.control import builds, catalog, states
from fjord.control.errors import NotFoundError
from fjord.control.models import (
    App,
    Cluster,
    ClusterApp,
    Deployment,
    DeploymentCluster,
    DeploymentStep,
    Environment,
    Org,
    Release,
    Rollout,
    RolloutWave,
    TimelineEntry,
    utcnow,
)
from fjord.control.plane import ControlPlane
from fjord.control.progress import expire
from fjord.control.roles import Actor
from fjord.control.views import (
    AppStatusView,
    CellView,
    ClusterStateView,
    CommitView,
    DeploymentView,
    DiffView,
    EnvStatusView,
    FileDiff,
    ReleaseView,
    RolloutView,
    StepView,
    TimelineView,
    WaveView,
)
from fjord.sources.gitea import commit_url, compare_url


def _commit_url(release: Release | None) -> str | None:
    return commit_url(release.source, release.commit) if release and release.commit else None


def _view(
    deployment: Deployment, org: str, app: str, environment: str, release: Release | None
) -> DeploymentView:
    return DeploymentView(
        id=deployment.id,
        org=org,
        app=app,
        environment=environment,
        kind=deployment.kind,
        state=deployment.state,
        step=deployment.step,
        reason=deployment.reason,
        digest=release.digest if release else None,
        revision=release.revision if release else None,
        config_version=release.config_version if release else deployment.config_version,
        requested_by=deployment.requested_by,
        requested_by_identity=deployment.requested_by_identity,
        approved_by=deployment.approved_by,
        window_override_by=deployment.window_override_by,
        not_before=deployment.not_before
        if deployment.state in (states.WAITING_WINDOW, states.ROLLING_OUT)
        else None,
        created_at=deployment.created_at,
        updated_at=deployment.updated_at,
        finished_at=deployment.finished_at,
        release_id=release.id if release else None,
        # What this deployment pinned when it was requested (before its release exists), else
        # where its release came from.
        ref=deployment.source_ref or (release.ref if release else None),
        commit=deployment.source_revision or (release.commit if release else None),
        commit_url=_commit_url(release),
        image=release.image if release else None,
    )


async def deployment_view(
    session: AsyncSession, deployment: Deployment, *, detail: bool = True
) -> DeploymentView:
    app = await session.get(App, deployment.app_id)
    env = (
        await session.get(Environment, deployment.environment_id)
        if deployment.environment_id is not None
        else None
    )
    assert app is not None
    org = await session.get(Org, app.org_id)
    assert org is not None
    release = await session.get(Release, deployment.release_id) if deployment.release_id else None
    # A build (a pushed tag's release) goes to no environment.
    view = _view(deployment, org.name, app.name, env.name if env else "", release)
    if detail:
        clusters = (
            await session.scalars(
                select(DeploymentCluster)
                .where(DeploymentCluster.deployment_id == deployment.id)
                .order_by(DeploymentCluster.cluster_id)
            )
        ).all()
        view.clusters = [
            ClusterStateView(
                cluster=c.cluster_id,
                state=c.state,
                revision=c.revision,
                message=c.message,
                updated_at=c.updated_at,
            )
            for c in clusters
        ]
        timeline = (
            await session.scalars(
                select(TimelineEntry)
                .where(TimelineEntry.deployment_id == deployment.id)
                .order_by(TimelineEntry.id)
            )
        ).all()
        view.timeline = [
            TimelineView(
                at=t.at,
                cluster=t.cluster_id,
                severity=t.severity,
                reason=t.reason,
                message=t.message,
            )
            for t in timeline
        ]
        steps = (
            await session.scalars(
                select(DeploymentStep)
                .where(DeploymentStep.deployment_id == deployment.id)
                .order_by(DeploymentStep.position)
            )
        ).all()
        view.steps = [
            StepView(
                name=s.name,
                replica=s.replica,
                attempts=s.attempts,
                started_at=s.started_at,
                finished_at=s.finished_at,
            )
            for s in steps
        ]
    view.rollout = await rollout_view(session, deployment)
    return view


async def rollout_view(session: AsyncSession, deployment: Deployment) -> RolloutView | None:
    """The deployment's waves, if it rolls out in waves."""
    rollout = await session.get(Rollout, deployment.id)
    if rollout is None:
        return None
    planned = (
        await session.scalars(
            select(RolloutWave)
            .where(RolloutWave.deployment_id == deployment.id)
            .order_by(RolloutWave.number)
        )
    ).all()
    return RolloutView(
        state=rollout.state,
        wave=rollout.wave,
        waves=[_wave_view(w, rollout) for w in planned],
        message=rollout.message,
        failure_budget=rollout.failure_budget,
        failed=list(rollout.failed),
        rollback_on_failure=rollout.rollback_on_failure,
        next_check=deployment.not_before if deployment.state == states.ROLLING_OUT else None,
    )


def _wave_view(wave: RolloutWave, rollout: Rollout) -> WaveView:
    if wave.finished_at is not None:
        state = "done"
    elif wave.number == rollout.wave and rollout.state == "halted":
        state = "halted"
    elif wave.ready_at is not None:
        state = "soaking"
    elif wave.started_at is not None:
        state = "running"
    else:
        state = "pending"
    return WaveView(
        number=wave.number,
        clusters=list(wave.clusters),
        soak_seconds=wave.soak_seconds,
        state=state,
        started_at=wave.started_at,
        ready_at=wave.ready_at,
        finished_at=wave.finished_at,
    )


async def get_deployment(plane: ControlPlane, actor: Actor, deployment_id: int) -> DeploymentView:
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, deployment_id)
        if deployment is None:
            raise NotFoundError(f"no deployment {deployment_id}")
        overdue = deployment.deadline is not None and deployment.deadline < utcnow()
        if deployment.state == states.PROGRESSING and overdue:
            # Deadlines hold even where no server sweeps them (the in-process CLI).
            await expire(session)
        view = await deployment_view(session, deployment)
    # Checked after loading, with the same error as a missing one: no probing other orgs' ids.
    if actor.role_in(view.org) is None:
        raise NotFoundError(f"no deployment {deployment_id}")
    return view


async def history(
    plane: ControlPlane,
    actor: Actor,
    full_name: str,
    *,
    environment: str | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[DeploymentView]:
    """Deployments of an app, newest first (keyset pagination by id)."""
    org_name, app_name = catalog.split_app(full_name)
    actor.require(org_name)
    async with plane.db.session() as session:
        ref = await catalog.app(session, org_name, app_name)
        query = select(Deployment).where(Deployment.app_id == ref.app.id)
        if environment is not None:
            env = await catalog.environment(session, environment)
            query = query.where(Deployment.environment_id == env.id)
        if before is not None:
            query = query.where(Deployment.id < before)
        # One query: the deployments with their releases and environment names.
        rows = (
            await session.execute(
                query.add_columns(Release, Environment.name)
                .outerjoin(Release, Release.id == Deployment.release_id)
                .join(Environment, Environment.id == Deployment.environment_id)
                .order_by(Deployment.id.desc())
                .limit(limit)
            )
        ).all()
        return [_view(d, org_name, app_name, env_name, r) for d, r, env_name in rows]


def _release_view(org: str, app: str, release: Release) -> ReleaseView:
    return ReleaseView(
        id=release.id,
        org=org,
        app=app,
        digest=release.digest,
        source=release.source,
        revision=release.revision,
        config_version=release.config_version,
        builder=release.builder,
        environments=list(release.environments),
        created_at=release.created_at,
        ref=release.ref,
        commit=release.commit,
        image=release.image,
        commit_url=commit_url(release.source, release.commit) if release.commit else None,
    )


async def releases(plane: ControlPlane, actor: Actor, full_name: str) -> list[ReleaseView]:
    org_name, app_name = catalog.split_app(full_name)
    actor.require(org_name)
    async with plane.db.session() as session:
        ref = await catalog.app(session, org_name, app_name)
        rows = (
            await session.scalars(
                select(Release).where(Release.app_id == ref.app.id).order_by(Release.id.desc())
            )
        ).all()
    return [_release_view(org_name, app_name, r) for r in rows]


async def get_release(
    plane: ControlPlane, actor: Actor, full_name: str, release_id: int
) -> ReleaseView:
    org_name, app_name = catalog.split_app(full_name)
    actor.require(org_name)
    async with plane.db.session() as session:
        ref = await catalog.app(session, org_name, app_name)
        row = await session.get(Release, release_id)
    if row is None or row.app_id != ref.app.id:
        raise NotFoundError(f"{full_name} has no release {release_id}")
    return _release_view(org_name, app_name, row)


async def find_release(session: AsyncSession, app_id: int, digest: str) -> Release:
    """A release by digest or unique digest prefix (``sha256:`` optional)."""
    wanted = digest if digest.startswith("sha256:") else f"sha256:{digest}"
    rows = (
        await session.scalars(
            select(Release)
            .where(Release.app_id == app_id, Release.digest.startswith(wanted))
            .options(undefer(Release.files), undefer(Release.config))
        )
    ).all()
    if len(rows) != 1:
        raise NotFoundError(
            f"{'no' if not rows else 'more than one'} release matches {digest!r}",
            hint="see the digests with: fjord history ORG/APP",
        )
    return rows[0]


async def app_status(plane: ControlPlane, actor: Actor, full_name: str) -> AppStatusView:
    """Per environment: the latest deployment and, per cluster, what Flux reports running."""
    org_name, app_name = catalog.split_app(full_name)
    actor.require(org_name)
    async with plane.db.session() as session:
        ref = await catalog.app(session, org_name, app_name)
        cells = {
            r.cluster_id: r
            for r in (
                await session.scalars(select(ClusterApp).where(ClusterApp.app_id == ref.app.id))
            ).all()
        }
        envs: list[EnvStatusView] = []
        for env in await catalog.environments(session):
            latest = (
                await session.scalars(
                    select(Deployment)
                    .where(Deployment.app_id == ref.app.id, Deployment.environment_id == env.id)
                    .order_by(Deployment.id.desc())
                    .limit(1)
                )
            ).one_or_none()
            clusters = await catalog.clusters(session, ref.org.id, env.id)
            envs.append(
                EnvStatusView(
                    environment=env.name,
                    deployment=await deployment_view(session, latest) if latest else None,
                    clusters=[_cell(c, cells.get(c.id)) for c in clusters],
                )
            )
    return AppStatusView(org=org_name, app=app_name, environments=envs)


def _cell(cluster: Cluster, row: ClusterApp | None) -> CellView:
    return CellView(
        cluster=cluster.id,
        revision=row.applied_revision if row else None,
        digest=row.applied_digest if row else None,
        ready=row.ready if row else None,
        reason=row.reason if row else None,
        message=row.message if row else None,
        updated_at=row.updated_at if row else None,
    )


async def matrix(plane: ControlPlane, actor: Actor) -> list[AppStatusView]:
    """Every app the caller may read × environments × clusters."""
    rows, _ = await matrix_page(plane, actor)
    return rows


async def matrix_page(
    plane: ControlPlane,
    actor: Actor,
    *,
    search: str = "",
    offset: int = 0,
    limit: int | None = None,
) -> tuple[list[AppStatusView], int]:
    """One page of the apps the caller may read whose ``org/app`` contains ``search``, × their
    environments × clusters (the web UI's front page), and how many apps match in all.

    A fixed number of queries however many apps there are (one app at a time took a minute
    for a thousand); each environment's latest deployment comes as a summary, without the
    per-cluster progress and timeline that :func:`app_status` adds."""
    async with plane.db.session() as session:
        readable = [
            o.id
            for o in (await session.scalars(select(Org))).all()
            if actor.role_in(o.name) is not None
        ]
        where: list[ColumnElement[bool]] = [App.org_id.in_(readable)]
        if search:
            full_name = func.lower(Org.name + "/" + App.name)
            where.append(full_name.contains(search.lower(), autoescape=True))
        joined = select(App, Org).join(Org, App.org_id == Org.id).where(*where)
        total = await session.scalar(
            select(func.count()).select_from(App).join(Org, App.org_id == Org.id).where(*where)
        )
        query = joined.order_by(Org.name, App.name).offset(offset)
        rows = (await session.execute(query.limit(limit) if limit else query)).all()
        if not rows:
            return [], total or 0
        # A page reads only its own apps' rows; the whole matrix reads them all (no huge IN).
        app_ids = [app.id for app, _ in rows] if limit else None
        environments = await catalog.environments(session)
        latest_ids = (
            select(func.max(Deployment.id))
            .where(Deployment.environment_id.is_not(None))
            .group_by(Deployment.app_id, Deployment.environment_id)
        )
        if app_ids is not None:
            latest_ids = latest_ids.where(Deployment.app_id.in_(app_ids))
        latest = {
            (d.app_id, d.environment_id): d
            for d in (
                await session.scalars(select(Deployment).where(Deployment.id.in_(latest_ids)))
            ).all()
        }
        release_ids = {d.release_id for d in latest.values() if d.release_id is not None}
        releases = {
            r.id: r
            for r in (
                await session.scalars(select(Release).where(Release.id.in_(release_ids)))
            ).all()
        }
        placed: dict[tuple[int, int], list[Cluster]] = {}
        for cluster in (
            await session.scalars(
                select(Cluster).where(Cluster.active.is_(True)).order_by(Cluster.name)
            )
        ).all():
            placed.setdefault((cluster.org_id, cluster.environment_id), []).append(cluster)
        cell_query = select(ClusterApp)
        if app_ids is not None:
            cell_query = cell_query.where(ClusterApp.app_id.in_(app_ids))
        cells = {(r.cluster_id, r.app_id): r for r in await session.scalars(cell_query)}

    def env_status(app: App, org: Org, env: Environment) -> EnvStatusView:
        deployment = latest.get((app.id, env.id))
        release = releases.get(deployment.release_id or 0) if deployment else None
        return EnvStatusView(
            environment=env.name,
            deployment=_view(deployment, org.name, app.name, env.name, release)
            if deployment
            else None,
            clusters=[
                _cell(c, cells.get((c.id, app.id))) for c in placed.get((org.id, env.id), [])
            ],
        )

    views = [
        AppStatusView(
            org=org.name,
            app=app.name,
            environments=[env_status(app, org, env) for env in environments],
        )
        for app, org in rows
    ]
    return views, total or 0


def _diff(a: str, b: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            a.splitlines(keepends=True), b.splitlines(keepends=True), f"a/{name}", f"b/{name}"
        )
    )


async def diff(
    plane: ControlPlane, actor: Actor, full_name: str, from_digest: str, to_digest: str
) -> DiffView:
    """Manifests and dynamic config of two releases of an app, as unified diffs."""
    org_name, app_name = catalog.split_app(full_name)
    actor.require(org_name)
    async with plane.db.session() as session:
        ref = await catalog.app(session, org_name, app_name)
        old = await find_release(session, ref.app.id, from_digest)
        new = await find_release(session, ref.app.id, to_digest)
    files = []
    for path in sorted(set(old.files) | set(new.files)):
        text = _diff(old.files.get(path, ""), new.files.get(path, ""), path)
        if text:
            files.append(FileDiff(path=path, diff=text))
    config = _diff(
        json.dumps(old.config, indent=2, sort_keys=True) + "\n",
        json.dumps(new.config, indent=2, sort_keys=True) + "\n",
        "dynamic-config.json",
    )
    commits, compare = [], None
    if old.commit and new.commit and old.commit != new.commit:
        rows = await builds.commit_range(plane, ref, old.commit, new.commit)
        commits = [CommitView(**row, url=commit_url(new.source, row["commit"])) for row in rows]
        compare = compare_url(new.source, old.commit, new.commit)
    return DiffView(
        from_digest=old.digest,
        to_digest=new.digest,
        files=files,
        config=config,
        commits=commits,
        from_ref=old.ref,
        to_ref=new.ref,
        from_commit=old.commit,
        to_commit=new.commit,
        compare_url=compare,
    )
