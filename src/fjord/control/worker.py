"""The worker inside every replica: claims queued deployments from the database and runs their
steps (``pipeline.py``), recording each step's start and end.

Claims. A deployment is claimed by writing this replica's id and a lease into its row
(PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED`` first, so replicas never wait on each other;
SQLite: the same conditional update, for one replica). Per app and environment only the head of
the queue is claimable: nothing of that app+environment is being published and nothing older is
queued, so deployments run in request order. A heartbeat renews the leases of every claim and
lock this replica holds; a replica that stops heartbeating loses them when the lease ends, and
another replica's worker claims the deployment and continues at its first unfinished step. A
worker that finds its claim gone (it was too slow to renew) stops working on it: every step
start and end is written only while the claim is still this replica's.

Resuming after a crash is not a special path: a claim of a half-done deployment is a claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import ColumnElement, and_, case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from fjord.control import locks, notifications, pipeline, rollouts, states
from fjord.control.models import (
    App,
    Deployment,
    DeploymentStep,
    Environment,
    Org,
    TimelineEntry,
    utcnow,
)
from fjord.control.plane import ControlPlane
from fjord.control.progress import evaluate, finish

log = logging.getLogger(__name__)

# Called at every step boundary with (job, step name, phase); phases in order: "before" (claimed,
# nothing recorded), "started" (start recorded), "ran" (work done, end not recorded), "ended".
Hook = Callable[[pipeline.Job, str, str], Awaitable[None]]
PHASES = ("before", "started", "ran", "ended")


class LostClaim(Exception):
    """Another replica owns the deployment now (this one's lease ran out)."""


# Claimed work in progress: a newer deployment of the same app+environment waits behind it.
UNDER_WAY = (states.PUBLISHING, states.ROLLING_OUT)


def _lease_end(plane: ControlPlane) -> dt.datetime:
    return utcnow() + dt.timedelta(seconds=plane.settings.lease_seconds)


# ---- claiming --------------------------------------------------------------------------------


def _claimable() -> ColumnElement[bool]:
    now = utcnow()
    other = aliased(Deployment)
    ahead = (
        select(other.id)
        .where(
            other.app_id == Deployment.app_id,
            other.environment_id == Deployment.environment_id,
            other.id != Deployment.id,
            or_(
                other.state.in_(UNDER_WAY),
                and_(other.state == states.QUEUED, other.id < Deployment.id),
            ),
        )
        .exists()
    )
    return and_(
        or_(
            Deployment.state.in_((states.QUEUED, states.PUBLISHING)),
            # A rollout between its waves' checks, or a deployment waiting for its delivery
            # window: due again at ``not_before``.
            and_(
                Deployment.state.in_((states.ROLLING_OUT, states.WAITING_WINDOW)),
                Deployment.not_before <= now,
            ),
        ),
        or_(Deployment.owner.is_(None), Deployment.lease_expires < now),
        # A publishing (or rolling out) one is the head of its queue by construction.
        or_(Deployment.state.in_(UNDER_WAY), ~ahead),
    )


async def _job(session: AsyncSession, plane: ControlPlane, deployment: Deployment) -> pipeline.Job:
    app = await session.get(App, deployment.app_id)
    env = (
        await session.get(Environment, deployment.environment_id)
        if deployment.environment_id is not None
        else None
    )
    assert app is not None
    org = await session.get(Org, app.org_id)
    assert org is not None
    return pipeline.Job(
        id=deployment.id,
        kind=deployment.kind,
        idempotency_key=deployment.idempotency_key,
        org_id=org.id,
        org=org.name,
        app_id=app.id,
        app=app.name,
        source=app.source,
        environment_id=env.id if env else None,
        environment=env.name if env else None,
        release_id=deployment.release_id,
        config_version=deployment.config_version,
        source_revision=deployment.source_revision,
        source_ref=deployment.source_ref,
        source_version=deployment.source_version,
        image=deployment.image,
        approved_by=deployment.approved_by,
        window_override_by=deployment.window_override_by,
        waves=await rollouts.prepare(session, plane, deployment, org, env) if env else 0,
    )


async def claim(plane: ControlPlane) -> pipeline.Job | None:
    """Claim the oldest claimable deployment for this replica, or None."""
    query = select(Deployment.id).where(_claimable()).order_by(Deployment.id).limit(1)
    if plane.db.dialect == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Deployment)
    async with plane.db.session() as session:
        found = (await session.scalars(query)).first()
        if found is None:
            return None
        before = await session.get(Deployment, found)
        assert before is not None
        previous, was = before.owner, before.state
        claimed = await session.execute(
            update(Deployment)
            .where(Deployment.id == found, _claimable())
            .values(
                owner=plane.replica,
                lease_expires=_lease_end(plane),
                # A rollout stays ``rolling_out`` while a worker checks its wave.
                state=case(
                    (Deployment.state == states.ROLLING_OUT, states.ROLLING_OUT),
                    else_=states.PUBLISHING,
                ),
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        await session.refresh(before)
        if was == states.PUBLISHING:
            session.add(
                TimelineEntry(
                    deployment_id=found,
                    reason="resumed",
                    message=f"replica {plane.replica} continues"
                    + (f" (replica {previous} stopped renewing its claim)" if previous else ""),
                )
            )
        return await _job(session, plane, before)


# ---- recording -------------------------------------------------------------------------------


async def _owned(session: AsyncSession, plane: ControlPlane, deployment_id: int) -> Deployment:
    deployment = await session.get(Deployment, deployment_id, with_for_update=True)
    if deployment is None or deployment.owner != plane.replica:
        raise LostClaim(f"deployment {deployment_id} is no longer claimed by {plane.replica}")
    return deployment


async def _done_positions(plane: ControlPlane, deployment_id: int) -> set[int]:
    async with plane.db.session() as session:
        rows = await session.scalars(
            select(DeploymentStep.position).where(
                DeploymentStep.deployment_id == deployment_id,
                DeploymentStep.finished_at.is_not(None),
            )
        )
        return set(rows.all())


async def _start(
    plane: ControlPlane, job: pipeline.Job, position: int, step: pipeline.Step
) -> None:
    async with plane.db.session() as session:
        deployment = await _owned(session, plane, job.id)
        now = utcnow()
        row = await session.get(DeploymentStep, (job.id, position))
        if row is None:
            session.add(
                DeploymentStep(
                    deployment_id=job.id,
                    position=position,
                    name=step.name,
                    replica=plane.replica,
                    started_at=now,
                )
            )
        elif step.repeats:
            row.replica = plane.replica
        else:
            row.replica, row.started_at, row.attempts = plane.replica, now, row.attempts + 1
        deployment.step = step.name
        deployment.updated_at = now
        if step.publishes and deployment.published_at is None:
            deployment.published_at = now
        if row is None or not step.repeats:
            session.add(
                TimelineEntry(deployment_id=job.id, reason=step.name, message=step.describe(job))
            )


async def _end(plane: ControlPlane, job: pipeline.Job, position: int, *, last: bool) -> None:
    async with plane.db.session() as session:
        deployment = await _owned(session, plane, job.id)
        row = await session.get(DeploymentStep, (job.id, position))
        assert row is not None
        row.finished_at = utcnow()
        if last and deployment.environment_id is None:  # a build: nothing for clusters to run
            deployment.step = None
            finish(session, deployment, states.READY, f"release {deployment.release_id} built")
        elif last:
            await _start_following(session, plane, deployment)


async def _start_following(
    session: AsyncSession, plane: ControlPlane, deployment: Deployment
) -> None:
    """Every step is done: older unfinished work is superseded, the clusters are followed."""
    now = utcnow()
    published = deployment.published_at or now
    await session.execute(
        update(Deployment)
        .where(
            Deployment.app_id == deployment.app_id,
            Deployment.environment_id == deployment.environment_id,
            Deployment.id != deployment.id,
            # The tag is this one's now, whatever the order of requests; an approval a newer
            # request still waits for stays.
            or_(
                Deployment.state == states.PROGRESSING,
                and_(Deployment.state == states.AWAITING_APPROVAL, Deployment.id < deployment.id),
            ),
        )
        .values(
            state=states.SUPERSEDED,
            reason=f"superseded by deployment {deployment.id}",
            finished_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    deployment.state = states.PROGRESSING
    deployment.step = None
    deployment.published_at = published
    deployment.deadline = published + dt.timedelta(seconds=plane.settings.deploy_timeout_seconds)
    deployment.updated_at = now
    deployment.owner = None
    deployment.lease_expires = None
    await evaluate(session, deployment)


async def _fail(plane: ControlPlane, job: pipeline.Job, step: str, exc: BaseException) -> None:
    cause = str(exc) or type(exc).__name__
    hint = getattr(exc, "hint", None)
    async with plane.db.session() as session:
        deployment = await _owned(session, plane, job.id)
        finish(
            session, deployment, states.FAILED, f"{step}: {cause}" + (f" ({hint})" if hint else "")
        )


# ---- running ---------------------------------------------------------------------------------


async def _no_hook(job: pipeline.Job, step: str, phase: str) -> None:
    return None


async def run_job(plane: ControlPlane, job: pipeline.Job, hook: Hook = _no_hook) -> None:
    """Run the deployment's steps from the first unfinished one; the claim is this replica's."""
    steps = rollouts.steps(job)
    done = await _done_positions(plane, job.id)
    for position, step in enumerate(steps):
        if position in done:
            continue
        try:
            await hook(job, step.name, "before")
            await _start(plane, job, position, step)
            await hook(job, step.name, "started")
            outcome = await step.run(plane, job)
            await hook(job, step.name, "ran")
            if outcome is pipeline.WAIT:
                return
            await _end(plane, job, position, last=position == len(steps) - 1)
            await hook(job, step.name, "ended")
        except LostClaim:
            log.warning("deployment %s: claim lost during %s", job.id, step.name)
            return
        except Exception as exc:
            log.warning("deployment %s failed while %s", job.id, step.name, exc_info=True)
            with contextlib.suppress(LostClaim):
                await _fail(plane, job, step.name, exc)
            return


class Worker:
    """Claims and runs deployments for one replica until stopped; renews its leases."""

    def __init__(self, plane: ControlPlane, *, hook: Hook | None = None) -> None:
        self.plane = plane
        self.hook = hook or _no_hook
        self._running: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._renewed = time.monotonic()
        self.sender = notifications.Sender(plane)

    @property
    def replica(self) -> str:
        return self.plane.replica

    def wake(self) -> None:
        """New work may be claimable (a request was accepted, an approval given)."""
        self._wake.set()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name=f"fjord-worker-{self.replica}"),
            asyncio.create_task(self._heartbeat(), name=f"fjord-heartbeat-{self.replica}"),
        ]
        self.sender.start()

    async def stop(self, *, drain: bool = False) -> None:
        """Stop claiming. ``drain``: first finish everything claimable (the in-process CLI);
        otherwise cancel the running steps and give their claims up at once, so another replica
        continues without waiting for the lease to end."""
        if drain:
            await self.drain()
        await self.sender.stop()
        for task in self._tasks:
            task.cancel()
        running = list(self._running.values())
        for task in running:
            task.cancel()
        for task in [*self._tasks, *running]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        with contextlib.suppress(Exception):
            await self._give_up()

    async def drain(self) -> None:
        """Return once nothing is claimable and nothing runs here."""
        while True:
            if self._running:
                await asyncio.wait(list(self._running.values()))
                continue
            job = await claim(self.plane)
            if job is None:
                if not self._running:
                    return
                continue
            self._spawn(job)

    def _spawn(self, job: pipeline.Job) -> None:
        task = asyncio.create_task(run_job(self.plane, job, self.hook), name=f"deployment-{job.id}")
        self._running[job.id] = task

        def done(_: asyncio.Task[None]) -> None:
            self._running.pop(job.id, None)
            self._wake.set()  # a slot is free, and the next of that app+environment may run

        task.add_done_callback(done)

    async def _claim_loop(self) -> None:
        settings = self.plane.settings
        while True:
            job = None
            if len(self._running) < settings.workers:
                try:
                    job = await claim(self.plane)
                except Exception:  # a database hiccup: try again at the next poll
                    log.warning("claiming work failed", exc_info=True)
            if job is not None:
                self._spawn(job)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=settings.poll_seconds)
            self._wake.clear()

    async def _heartbeat(self) -> None:
        lease = self.plane.settings.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            running = dict(self._running)
            try:
                owned = await renew(self.plane)
            except Exception:
                log.warning("heartbeat failed", exc_info=True)
                if time.monotonic() - self._renewed > lease:
                    owned = set()  # the leases ran out: another replica may own all of it now
                else:
                    continue
            else:
                self._renewed = time.monotonic()
            for deployment_id, task in running.items():
                if deployment_id not in owned:
                    task.cancel()

    async def _give_up(self) -> None:
        async with self.plane.db.session() as session:
            await session.execute(
                update(Deployment)
                .where(Deployment.owner == self.replica, Deployment.state.in_(UNDER_WAY))
                .values(owner=None, lease_expires=None)
            )
        await locks.release_all(self.plane.db, self.replica)


async def renew(plane: ControlPlane) -> set[int]:
    """Extend every claim and lock of this replica; returns the deployments it still owns."""
    async with plane.db.session() as session:
        await session.execute(
            update(Deployment)
            .where(
                Deployment.owner == plane.replica,
                Deployment.state.in_((states.QUEUED, *UNDER_WAY)),
            )
            .values(lease_expires=_lease_end(plane))
        )
        owned = set(
            (
                await session.scalars(
                    select(Deployment.id).where(Deployment.owner == plane.replica)
                )
            ).all()
        )
    await locks.renew(plane.db, plane.replica, plane.settings.lease_seconds)
    return owned


async def drain(plane: ControlPlane, hook: Hook = _no_hook) -> None:
    """Run every claimable deployment to its end (or its approval gate) in this process."""
    await Worker(plane, hook=hook).drain()
