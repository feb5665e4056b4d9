"""Rollouts in waves: the wave steps of a deployment's pipeline, and what people do with a halted
rollout (resume, abort, roll back).

Where an environment has a ``rollout`` in the platform config, its clusters follow a tag each
(``{env}.{cluster}``, see ``flux.cluster_tag``) instead of the environment's. A deployment there
runs ``wave-1 … wave-N`` between the sync root and the environment tag. A wave step is claimed
again and again: the first run records what each of the wave's clusters' tags pointed at, moves
them to the release and calls those clusters' Receivers; every later run reads what the clusters
reported (Flux events, as for any deployment) and asks :func:`waves.decide` what next. Between
runs the deployment is ``rolling_out`` with a ``not_before`` time (the next check, or the end of
the soak): no process sleeps, and any replica continues it. Blobs are pushed once; each cluster
costs one tag move (a small manifest PUT) when its wave starts.

A failure beyond the budget halts the rollout (``halted``, Flux's message as the reason) and, if
configured, returns every cluster that got the release to what it ran before (``rolled_back``).
A halted rollout is resumed, aborted or rolled back by an app-admin; each is audited.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fjord.control import audit, catalog, flux, notifications, pipeline, states, waves
from fjord.control.errors import ConflictError, ForbiddenError, NotFoundError
from fjord.control.models import (
    App,
    Cluster,
    ClusterApp,
    Deployment,
    DeploymentCluster,
    Environment,
    Org,
    Release,
    Rollout,
    RolloutWave,
    TimelineEntry,
    utcnow,
)
from fjord.control.plane import ControlPlane
from fjord.control.progress import app_verdict, finish
from fjord.control.roles import Actor, Role
from fjord.control.stores import open_store, store_repository
from fjord.releases import repository

log = logging.getLogger(__name__)

WAITING = "waiting"  # a cluster whose wave has not started (per-cluster state)
# Kinds that move clusters wave by wave; an undeploy removes the app everywhere at once.
ROLLED_KINDS = (states.DEPLOY, states.ROTATE, states.PROMOTE, states.ROLLBACK)


# ---- planning (at the first claim) -----------------------------------------------------------


def _cluster_infos(
    plane: ControlPlane, org: str, env: str, rows: list[Cluster]
) -> list[waves.ClusterInfo]:
    config = plane.settings.platform.orgs.get(org)
    labels = {c.name: c.labels for c in (config.clusters.get(env, []) if config else [])}
    return [waves.ClusterInfo(r.id, r.name, labels.get(r.name, {})) for r in rows]


async def prepare(
    session: AsyncSession, plane: ControlPlane, deployment: Deployment, org: Org, env: Environment
) -> int:
    """Pin the deployment's waves the first time it is claimed; their number (0: no rollout)."""
    if deployment.kind not in ROLLED_KINDS or not plane.settings.rolls_out(env.name):
        return 0
    pinned = (
        await session.scalars(
            select(RolloutWave.number).where(RolloutWave.deployment_id == deployment.id)
        )
    ).all()
    if pinned:
        return len(pinned)
    rollout = plane.settings.platform.environment(env.name).rollout
    assert rollout is not None
    infos = _cluster_infos(
        plane, org.name, env.name, await catalog.clusters(session, org.id, env.id)
    )
    planned = (
        waves.all_at_once(infos)
        if deployment.kind == states.ROLLBACK
        else waves.assign(rollout, infos)
    )
    session.add(
        Rollout(
            deployment_id=deployment.id,
            state=waves.RUNNING,
            wave=1,
            failure_budget=rollout.failure_budget,
            rollback_on_failure=rollout.rollback_on_failure,
            failed=[],
            previous={},
        )
    )
    for number, wave in enumerate(planned, start=1):
        session.add(
            RolloutWave(
                deployment_id=deployment.id,
                number=number,
                clusters=list(wave.clusters),
                soak_seconds=wave.soak_seconds,
            )
        )
    return len(planned)


def steps(job: pipeline.Job) -> tuple[pipeline.Step, ...]:
    """The deployment's pipeline: its kind's steps, with the wave steps in place of the
    Receiver calls when it rolls out in waves (the environment tag still moves last)."""
    base = pipeline.steps(job.kind)
    if not job.waves:
        return base
    cut = base.index(pipeline.TAG)
    return (*base[:cut], *(_wave_step(n, job.waves) for n in range(1, job.waves + 1)), pipeline.TAG)


@functools.cache
def _wave_step(number: int, total: int) -> pipeline.Step:
    return pipeline.Step(
        f"wave-{number}",
        functools.partial(run_wave, number=number, total=total),
        lambda j: f"wave {number} of {total}",
        publishes=True,
        repeats=True,
    )


# ---- one run of a wave step ------------------------------------------------------------------


async def run_wave(
    plane: ControlPlane, job: pipeline.Job, *, number: int, total: int
) -> pipeline.Outcome:
    async with plane.db.session() as session:
        rollout = await session.get(Rollout, job.id)
        wave = await session.get(RolloutWave, (job.id, number))
        release = await session.get(Release, job.release_id)
        assert rollout is not None and wave is not None and release is not None  # noqa: PT018
    if rollout.state == waves.ROLLING_BACK:
        await _roll_back(plane, job)
        return pipeline.WAIT
    if rollout.state != waves.RUNNING:
        return pipeline.WAIT  # halted or aborted meanwhile: nothing to do until someone acts
    now = utcnow()
    verdicts = await _verdicts(plane, job, number, release.digest, wave.started_at or now)
    decision = waves.decide(
        waves.WaveState(
            started_at=wave.started_at,
            ready_at=wave.ready_at,
            soak_seconds=wave.soak_seconds,
            deadline_seconds=plane.settings.deploy_timeout_seconds,
            failure_budget=rollout.failure_budget - len(rollout.failed),
        ),
        verdicts,
        now,
        plane.settings.poll_seconds,
        counted=rollout.failed,
    )
    match decision:
        case waves.Start():
            await _start_wave(plane, job, number, total, wave.clusters, release.digest)
            await _schedule(plane, job, number, utcnow() + _seconds(plane.settings.poll_seconds))
            return pipeline.WAIT
        case waves.CheckAt(at=at, ready_at=ready_at, failed=failed):
            await _schedule(plane, job, number, at, ready_at=ready_at, failed=failed)
            return pipeline.WAIT
        case waves.Halt(message=message):
            await _halt(plane, job, number, total, message)
            return pipeline.WAIT
        case waves.Finish(failed=failed, ready_at=ready_at):
            return await _finish_wave(plane, job, number, total, failed, ready_at)
    raise AssertionError(decision)  # pragma: no cover


def _seconds(value: float) -> dt.timedelta:
    return dt.timedelta(seconds=value)


async def _verdicts(
    plane: ControlPlane, job: pipeline.Job, number: int, digest: str, since: dt.datetime
) -> dict[str, waves.Verdict]:
    """What every cluster that has the release so far reports, and the per-cluster rows the
    CLI and UI show (clusters of later waves: ``waiting``)."""
    async with plane.db.session() as session:
        planned = (
            await session.scalars(
                select(RolloutWave)
                .where(RolloutWave.deployment_id == job.id)
                .order_by(RolloutWave.number)
            )
        ).all()
        reports = {
            r.cluster_id: r
            for r in (
                await session.scalars(select(ClusterApp).where(ClusterApp.app_id == job.app_id))
            ).all()
        }
        verdicts: dict[str, waves.Verdict] = {}
        shown: dict[str, tuple[str, str | None, str | None]] = {}
        for wave in planned:
            for cluster in wave.clusters:
                if wave.number > number:
                    shown[cluster] = (WAITING, None, f"wave {wave.number} has not started")
                    continue
                found = app_verdict(reports.get(cluster), digest, since)
                # A report naming no revision (the tag was missing before the wave started, a
                # pull failure) never fails the gate; it times out instead.
                state = found.state
                report = reports.get(cluster)
                if state == states.FAILED and (report is None or report.digest != digest):
                    state = states.PENDING
                verdicts[cluster] = waves.Verdict(state, found.message)
                shown[cluster] = (state, found.revision, found.message)
        await _show(session, job.id, shown)
    return verdicts


async def _show(
    session: AsyncSession, deployment_id: int, shown: dict[str, tuple[str, str | None, str | None]]
) -> None:
    rows = {
        r.cluster_id: r
        for r in (
            await session.scalars(
                select(DeploymentCluster).where(DeploymentCluster.deployment_id == deployment_id)
            )
        ).all()
    }
    now = utcnow()
    for cluster, (state, revision, message) in shown.items():
        row = rows.get(cluster)
        if row is None:
            row = DeploymentCluster(deployment_id=deployment_id, cluster_id=cluster, state=state)
            session.add(row)
        if (row.state, row.revision, row.message) != (state, revision, message):
            row.state, row.revision, row.message, row.updated_at = state, revision, message, now


async def _owned(
    session: AsyncSession, plane: ControlPlane, job: pipeline.Job
) -> Deployment | None:
    deployment = await session.get(Deployment, job.id, with_for_update=True)
    if deployment is None or deployment.owner != plane.replica:
        return None
    return deployment


async def _start_wave(
    plane: ControlPlane,
    job: pipeline.Job,
    number: int,
    total: int,
    cluster_ids: list[str],
    digest: str,
) -> None:
    """Record where the wave's clusters' tags point, move them to the release, nudge them.

    The previous digests are committed before any tag moves, so a crash in between never
    records the new digest as the one to return to.
    """
    async with plane.db.session() as session:
        rows = {
            c.id: c
            for c in (await session.scalars(select(Cluster).where(Cluster.id.in_(cluster_ids))))
        }
        rollout = await session.get(Rollout, job.id)
        assert rollout is not None
        known = dict(rollout.previous)
    repo = repository(job.org, job.app)
    async with open_store(plane.settings, job.org) as store:
        stored = store_repository(plane.settings, job.org, repo)
        missing = [c for c in cluster_ids if c not in known]
        for cluster in missing:
            known[cluster] = await store.resolve(
                stored, flux.cluster_tag(job.target()[1], rows[cluster].name)
            )
        if missing:
            async with plane.db.session() as session:
                row = await session.get(Rollout, job.id)
                assert row is not None
                row.previous = known
        # One call for the wave: the manifest and its blobs are confirmed once, then the tags move.
        await store.tag(
            stored,
            digest,
            *(flux.cluster_tag(job.target()[1], rows[cluster].name) for cluster in cluster_ids),
        )
    await pipeline.nudge(plane, job, only=set(cluster_ids))
    async with plane.db.session() as session:
        deployment = await _owned(session, plane, job)
        if deployment is None:
            return
        wave = await session.get(RolloutWave, (job.id, number))
        assert wave is not None
        wave.started_at, wave.ready_at = utcnow(), None
        session.add(
            TimelineEntry(
                deployment_id=job.id,
                reason="wave-started",
                message=f"wave {number} of {total} started: {', '.join(cluster_ids)}",
            )
        )


async def _schedule(
    plane: ControlPlane,
    job: pipeline.Job,
    number: int,
    at: dt.datetime,
    *,
    ready_at: dt.datetime | None = None,
    failed: tuple[str, ...] = (),
) -> None:
    """Give the claim up until ``at``; record the gate passing and budgeted failures."""
    async with plane.db.session() as session:
        deployment = await _owned(session, plane, job)
        if deployment is None:
            return
        if ready_at is not None:
            wave = await session.get(RolloutWave, (job.id, number))
            assert wave is not None
            wave.ready_at = ready_at
            session.add(
                TimelineEntry(
                    deployment_id=job.id,
                    reason="wave-ready",
                    message=f"wave {number} is ready; soaking {wave.soak_seconds}s",
                )
            )
        await _count_failures(session, job.id, failed)
        deployment.state = states.ROLLING_OUT
        deployment.not_before = at
        deployment.owner = None
        deployment.lease_expires = None
        deployment.updated_at = utcnow()


async def _count_failures(
    session: AsyncSession, deployment_id: int, failed: tuple[str, ...]
) -> None:
    if not failed:
        return
    rollout = await session.get(Rollout, deployment_id)
    assert rollout is not None
    new = [c for c in failed if c not in rollout.failed]
    if new:
        rollout.failed = [*rollout.failed, *new]
        session.add(
            TimelineEntry(
                deployment_id=deployment_id,
                severity="warning",
                reason="failure-budget",
                message=f"{', '.join(new)} failed; within the failure budget",
            )
        )


async def _finish_wave(
    plane: ControlPlane,
    job: pipeline.Job,
    number: int,
    total: int,
    failed: tuple[str, ...],
    ready_at: dt.datetime | None,
) -> pipeline.Outcome:
    async with plane.db.session() as session:
        deployment = await _owned(session, plane, job)
        if deployment is None:
            return pipeline.WAIT
        await _count_failures(session, job.id, failed)
        wave = await session.get(RolloutWave, (job.id, number))
        rollout = await session.get(Rollout, job.id)
        assert wave is not None and rollout is not None  # noqa: PT018
        wave.finished_at = utcnow()
        wave.ready_at = wave.ready_at or ready_at
        rollout.wave = min(number + 1, total)
        rollout.updated_at = utcnow()
        if number == total:
            rollout.state = waves.DONE
        session.add(
            TimelineEntry(
                deployment_id=job.id,
                reason="wave-finished",
                message=f"wave {number} of {total} is ready and soaked",
            )
        )
        notifications.emit(
            session,
            job.id,
            notifications.WAVE_FINISHED,
            f"wave {number} of {total} is ready and soaked",
            wave=number,
            waves=total,
            clusters=list(wave.clusters),
        )
    return pipeline.DONE


async def _halt(
    plane: ControlPlane, job: pipeline.Job, number: int, total: int, message: str
) -> None:
    async with plane.db.session() as session:
        deployment = await _owned(session, plane, job)
        if deployment is None:
            return
        rollout = await session.get(Rollout, job.id)
        assert rollout is not None
        rollout.message = f"wave {number} of {total}: {message}"
        rollout.updated_at = utcnow()
        if rollout.rollback_on_failure:
            rollout.state = waves.ROLLING_BACK
        else:
            rollout.state = waves.HALTED
            deployment.state = states.HALTED
            deployment.reason = f"halted at {rollout.message}"
            deployment.owner = None
            deployment.lease_expires = None
            deployment.updated_at = utcnow()
        session.add(
            TimelineEntry(
                deployment_id=job.id,
                severity="error",
                reason="halted",
                message=f"halted at {rollout.message}",
            )
        )
        notifications.emit(
            session,
            job.id,
            notifications.HALTED,
            f"halted at {rollout.message}",
            wave=number,
            waves=total,
            rolls_back=rollout.rollback_on_failure,
        )
        rolls_back = rollout.rollback_on_failure
    if rolls_back:
        await _roll_back(plane, job)


async def _roll_back(plane: ControlPlane, job: pipeline.Job) -> None:
    """Point every cluster this rollout moved back at the digest its tag had before."""
    async with plane.db.session() as session:
        rollout = await session.get(Rollout, job.id)
        assert rollout is not None
        previous: dict[str, str | None] = dict(rollout.previous)
        names = {
            c.id: c.name
            for c in (await session.scalars(select(Cluster).where(Cluster.id.in_(list(previous)))))
        }
    returned = sorted(c for c, d in previous.items() if d is not None)
    left = sorted(c for c, d in previous.items() if d is None)
    stored = store_repository(plane.settings, job.org, repository(job.org, job.app))
    async with open_store(plane.settings, job.org) as store:
        by_digest: dict[str, list[str]] = {}
        for cluster in returned:
            digest = previous[cluster]
            assert digest is not None
            by_digest.setdefault(digest, []).append(
                flux.cluster_tag(job.target()[1], names[cluster])
            )
        for digest, tags in by_digest.items():  # each digest confirmed once for its clusters
            await store.tag(stored, digest, *tags)
    await pipeline.nudge(plane, job, only=set(returned))
    async with plane.db.session() as session:
        deployment = await _owned(session, plane, job)
        if deployment is None:
            return
        row = await session.get(Rollout, job.id)
        assert row is not None
        row.state = waves.ROLLED_BACK
        row.updated_at = utcnow()
        summary = f"rolled back {', '.join(returned) or 'no cluster'} to their previous release"
        if left:
            summary += f"; {', '.join(left)} had none before and keep this one"
        reason = f"{row.message}; {summary}" if row.message else summary
        finish(session, deployment, states.ROLLED_BACK, reason)
        notifications.emit(session, job.id, notifications.ROLLED_BACK, reason, clusters=returned)


# ---- people's actions on a rollout -----------------------------------------------------------


async def _load(
    plane: ControlPlane, actor: Actor, deployment_id: int, verb: str
) -> tuple[str, str]:
    """The deployment's org and ``org/app@env``; checks the actor may act on it."""
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, deployment_id)
        rollout = await session.get(Rollout, deployment_id)
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
        raise ForbiddenError(f"to {verb} a rollout needs the app-admin role in org {org.name!r}")
    if rollout is None:
        raise ConflictError(
            f"deployment {deployment_id} does not roll out in waves",
            hint=f"{env.name} has no rollout strategy in the platform config",
        )
    return org.name, f"{org.name}/{app.name}@{env.name}"


def _idle(deployment: Deployment, now: dt.datetime) -> bool:
    return deployment.owner is None or (
        deployment.lease_expires is not None and deployment.lease_expires < now
    )


async def resume(plane: ControlPlane, actor: Actor, deployment_id: int) -> None:
    """A halted rollout tries its current wave again: tags moved again, Receivers called, the
    gate and its deadline start over (older failures no longer count)."""
    org, target = await _load(plane, actor, deployment_id, "resume")
    async with plane.db.session() as session:
        deployment, rollout = await _locked(session, deployment_id)
        _require_state(deployment, (states.HALTED,), "resume")
        await _no_newer(session, deployment)
        wave = await session.get(RolloutWave, (deployment_id, rollout.wave))
        assert wave is not None
        wave.started_at, wave.ready_at = None, None
        rollout.state, rollout.updated_at = waves.RUNNING, utcnow()
        _wake(deployment)
        session.add(
            TimelineEntry(
                deployment_id=deployment_id,
                reason="resumed",
                message=f"resumed at wave {rollout.wave} by {actor.name}",
            )
        )
        audit.record(
            session, actor, "rollout.resume", target, org=org, deployment=deployment_id,
            wave=rollout.wave,
        )  # fmt: skip
    plane.work_queued()


async def abort(plane: ControlPlane, actor: Actor, deployment_id: int) -> None:
    """Stop the rollout where it is: clusters keep what they run; no later wave starts."""
    org, target = await _load(plane, actor, deployment_id, "abort")
    async with plane.db.session() as session:
        deployment, rollout = await _locked(session, deployment_id)
        _require_state(deployment, (states.HALTED, states.ROLLING_OUT), "abort")
        _require_idle(deployment)
        rollout.state, rollout.updated_at = waves.ABORTED, utcnow()
        finish(
            session,
            deployment,
            states.ABORTED,
            f"aborted at wave {rollout.wave} by {actor.name}; clusters keep what they run",
        )
        audit.record(
            session, actor, "rollout.abort", target, org=org, deployment=deployment_id,
            wave=rollout.wave,
        )  # fmt: skip


async def roll_back(plane: ControlPlane, actor: Actor, deployment_id: int) -> None:
    """Return every cluster the rollout moved to what it ran before (a worker does it)."""
    org, target = await _load(plane, actor, deployment_id, "roll back")
    async with plane.db.session() as session:
        deployment, rollout = await _locked(session, deployment_id)
        _require_state(deployment, (states.HALTED, states.ROLLING_OUT), "roll back")
        _require_idle(deployment)
        await _no_newer(session, deployment)
        rollout.state, rollout.updated_at = waves.ROLLING_BACK, utcnow()
        if rollout.message is None:
            rollout.message = f"rolled back at wave {rollout.wave} by {actor.name}"
        _wake(deployment)
        session.add(
            TimelineEntry(
                deployment_id=deployment_id,
                reason="rolling-back",
                message=f"roll back asked by {actor.name}",
            )
        )
        audit.record(
            session, actor, "rollout.rollback", target, org=org, deployment=deployment_id,
            wave=rollout.wave,
        )  # fmt: skip
    plane.work_queued()


async def _locked(session: AsyncSession, deployment_id: int) -> tuple[Deployment, Rollout]:
    deployment = await session.get(Deployment, deployment_id, with_for_update=True)
    rollout = await session.get(Rollout, deployment_id, with_for_update=True)
    assert deployment is not None and rollout is not None  # noqa: PT018
    return deployment, rollout


def _require_state(deployment: Deployment, allowed: tuple[str, ...], verb: str) -> None:
    if deployment.state not in allowed:
        raise ConflictError(
            f"deployment {deployment.id} is {deployment.state}: only a rollout that is"
            f" {' or '.join(allowed)} can {verb}"
        )


def _require_idle(deployment: Deployment) -> None:
    if not _idle(deployment, utcnow()):
        raise ConflictError(
            f"a worker is checking deployment {deployment.id}'s wave right now",
            hint="try again in a second",
        )


async def _no_newer(session: AsyncSession, deployment: Deployment) -> None:
    newer = await session.scalar(
        select(Deployment.id)
        .where(
            Deployment.app_id == deployment.app_id,
            Deployment.environment_id == deployment.environment_id,
            Deployment.id > deployment.id,
            Deployment.state != states.SUPERSEDED,
        )
        .limit(1)
    )
    if newer is not None:
        raise ConflictError(
            f"deployment {newer} of the same app and environment came after this one",
            hint="act on the newest deployment instead",
        )


def _wake(deployment: Deployment) -> None:
    """Due now: the next worker poll (any replica) continues its wave step."""
    now = utcnow()
    deployment.state = states.ROLLING_OUT
    deployment.reason = None
    deployment.not_before = now
    deployment.owner = None
    deployment.lease_expires = None
    deployment.updated_at = now


RolloutAction = Literal["resume", "abort", "rollback"]
ROLLOUT_ACTIONS: dict[str, Callable[[ControlPlane, Actor, int], Awaitable[None]]] = {
    "resume": resume,
    "abort": abort,
    "rollback": roll_back,
}
