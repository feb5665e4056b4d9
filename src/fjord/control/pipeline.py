"""Deployments as declared pipelines: per kind, the ordered steps a worker runs.

Every step is idempotent: running it again after a crash at any point inside it gives the same
result, so a worker that takes a deployment over (``worker.py``) starts at the first step without
a recorded end, and a restart is nothing but that. Store-side order is the same for every kind
that moves a tag: the release is pushed and signed, the sync root lists the app, then the
environment tag moves, then the clusters' Receivers are nudged (best effort: a slow or dead
Receiver costs its own timeout, never the deployment).

A step gets the deployment's :class:`Job` (what was pinned when the request was accepted, loaded
once per claim) and returns :data:`DONE`, or :data:`WAIT` when the deployment must stop until
someone acts (the approval gate); it raises to fail the deployment with ``"{step}: {cause}"``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import undefer

from fjord.control import (
    builds,
    catalog,
    notifications,
    publishing,
    receivers,
    states,
    windows,
)
from fjord.control.catalog import clusters as org_clusters
from fjord.control.errors import InvalidError
from fjord.control.models import (
    ConfigVersion,
    Deployment,
    Placement,
    Release,
    TimelineEntry,
    utcnow,
)
from fjord.control.plane import ControlPlane
from fjord.releases import Release as BuiltRelease
from fjord.releases import repack, repository
from fjord.sources import Resolved
from fjord.spec import DynamicConfig

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    DONE = "done"
    WAIT = "wait"  # stopped until someone acts; the claim is given up, the step stays open


DONE = Outcome.DONE
WAIT = Outcome.WAIT


@dataclass
class Job:
    """One deployment as its steps see it; ``built`` is a cache that lives only in memory."""

    id: int
    kind: str
    idempotency_key: str | None
    org_id: int
    org: str
    app_id: int
    app: str
    source: str
    environment_id: int | None  # None: a build (``states.BUILD``) goes to no environment
    environment: str | None
    release_id: int | None
    config_version: int | None
    source_revision: str | None  # the commit, pinned at request time
    source_ref: str | None
    source_version: str | None
    image: str | None
    approved_by: str | None
    built: BuiltRelease | None = None
    waves: int = 0  # the rollout's waves (pinned at the first claim); 0: all clusters at once
    window_override_by: str | None = None

    def target(self) -> tuple[int, str]:
        """The environment (id, name) of a step that needs one."""
        if self.environment_id is None or self.environment is None:
            raise InvalidError(f"{self.kind} {self.id} has no environment")
        return self.environment_id, self.environment


StepRun = Callable[[ControlPlane, Job], Awaitable[Outcome]]


@dataclass(frozen=True)
class Step:
    name: str
    run: StepRun
    describe: Callable[[Job], str]
    # The step that makes the deployment visible to clusters: its first start is the moment
    # cluster reports count from (``published_at``).
    publishes: bool = False
    # Runs again and again until done (a wave's health checks): a new run is no new attempt and
    # adds nothing to the timeline.
    repeats: bool = False


# ---- the steps -------------------------------------------------------------------------------


async def _pinned_config(plane: ControlPlane, job: Job) -> DynamicConfig:
    if job.config_version is None:
        return DynamicConfig()
    async with plane.db.session() as session:
        row = (
            await session.scalars(
                select(ConfigVersion).where(
                    ConfigVersion.app_id == job.app_id,
                    ConfigVersion.version == job.config_version,
                )
            )
        ).one()
    return DynamicConfig(row.version, row.values)


async def build(plane: ControlPlane, job: Job) -> Outcome:
    """Render the app's repository at the pinned commit with the pinned config; record it.

    A deploy of an existing release (pinned at request time, no commit) has nothing to build.
    """
    if job.source_revision is None:
        if job.release_id is None:
            raise InvalidError("nothing to build: the request pinned no commit and no release")
        return DONE
    dynamic = await _pinned_config(plane, job)
    async with plane.db.session() as session:
        ref = await catalog.app(session, job.org, job.app)
    commit, version = job.source_revision, job.source_version
    if job.kind == states.BUILD or (version is None and job.image is None):
        # Queued without a fetch (a webhook's pushed sha, for an annotated tag the tag object):
        # peeled to its commit, and the version from the tags there, now.
        found = await builds.resolve(plane, ref, commit)
        commit = found.commit
        if version is None and job.image is None:
            version = builds.image_version(found)
    resolved = Resolved(
        repository=ref.app.source,
        ref=job.source_ref or commit,
        kind="pinned",
        commit=commit,
        tags=(),
    )
    done = await builds.build(
        plane, ref, resolved, dynamic=dynamic, image=job.image, version=version
    )
    release = await builds.record(plane, ref, done, dynamic)
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, job.id)
        assert deployment is not None
        deployment.release_id = release.id
    job.release_id = release.id
    job.built = done.built
    return DONE


async def _recorded(plane: ControlPlane, job: Job) -> BuiltRelease:
    """The release to push: the one built in this process, or re-packed from its record."""
    async with plane.db.session() as session:
        release = await session.get(Release, job.release_id, options=[undefer(Release.files)])
        assert release is not None
    if job.built is not None and job.built.digest == release.digest:
        return job.built
    built = await asyncio.to_thread(
        repack,
        {path: text.encode() for path, text in release.files.items()},
        org=job.org,
        app=job.app,
        source=release.source,
        revision=release.revision,
        dynamic_version=release.config_version,
        builder=release.builder,
        environments=release.environments,
    )
    if built.digest != release.digest:
        raise RuntimeError(f"re-packing {release.digest} gave {built.digest}")
    return built


async def push(plane: ControlPlane, job: Job) -> Outcome:
    """Push and sign the release; no tag moves."""
    await publishing.push_release(plane, job.org, await _recorded(plane, job))
    return DONE


async def approval(plane: ControlPlane, job: Job) -> Outcome:
    """Into an environment that needs it, wait for an app-admin's approval."""
    _, environment = job.target()
    if job.approved_by is not None or not plane.settings.needs_approval(environment):
        return DONE
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, job.id)
        assert deployment is not None
        if deployment.owner != plane.replica or deployment.approved_by is not None:
            return DONE if deployment.approved_by is not None else WAIT
        deployment.state = states.AWAITING_APPROVAL
        deployment.step = None
        deployment.owner = None
        deployment.lease_expires = None
        deployment.updated_at = utcnow()
        session.add(
            TimelineEntry(
                deployment_id=job.id,
                reason="awaiting-approval",
                message=f"{environment} needs an app-admin's approval",
            )
        )
        notifications.emit(
            session,
            job.id,
            notifications.AWAITING_APPROVAL,
            f"{job.environment} needs an app-admin's approval",
        )
    return WAIT


async def window(plane: ControlPlane, job: Job) -> Outcome:
    """Outside every delivery window of the environment, wait (visibly) until the next opens.

    Before anything reaches a cluster (the sync root, the tags); the build and push are done, so
    the deployment starts publishing at once when the window opens. A platform-admin's
    override lets it through.
    """
    _, environment = job.target()
    configured = plane.settings.platform.environment(environment).delivery_windows
    if not configured:
        return DONE
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, job.id, with_for_update=True)
        assert deployment is not None
        if deployment.owner != plane.replica:
            return WAIT
        found = windows.status(configured, utcnow())
        if deployment.window_override_by is not None or found.open:
            if deployment.state == states.PUBLISHING and deployment.reason is not None:
                deployment.reason = None
            return DONE
        assert found.opens_at is not None
        message = windows.describe_opening(environment, found)
        if deployment.reason != message:
            session.add(TimelineEntry(deployment_id=job.id, reason="window", message=message))
        deployment.state = states.WAITING_WINDOW
        deployment.reason = message
        deployment.not_before = found.opens_at
        deployment.step = None
        deployment.owner = None
        deployment.lease_expires = None
        deployment.updated_at = utcnow()
    return WAIT


async def place(plane: ControlPlane, job: Job) -> Outcome:
    """The app belongs in its org's sync root for this environment."""
    environment_id, environment = job.target()
    async with plane.db.session() as session:
        release = await session.get(Release, job.release_id)
        assert release is not None
        if environment not in release.environments:
            raise InvalidError(f"release {release.digest} has no manifests for {environment}")
        if await session.get(Placement, (job.app_id, environment_id)) is None:
            session.add(Placement(app_id=job.app_id, environment_id=environment_id))
    return DONE


async def unplace(plane: ControlPlane, job: Job) -> Outcome:
    environment_id, _ = job.target()
    async with plane.db.session() as session:
        placement = await session.get(Placement, (job.app_id, environment_id))
        if placement is not None:
            await session.delete(placement)
    return DONE


async def sync_root(plane: ControlPlane, job: Job) -> Outcome:
    """Publish the org's sync root from the committed placements (serialised per org+env)."""
    environment_id, environment = job.target()
    digest = await publishing.publish_sync_root(
        plane, job.org_id, job.org, environment_id, environment
    )
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, job.id)
        assert deployment is not None
        deployment.sync_digest = digest
    return DONE


async def tag(plane: ControlPlane, job: Job) -> Outcome:
    """Move the environment tag to the release's digest: from now on clusters pull it."""
    async with plane.db.session() as session:
        release = await session.get(Release, job.release_id)
        assert release is not None
    _, environment = job.target()
    await publishing.move_tag(
        plane, job.org, repository(job.org, job.app), release.digest, environment
    )
    return DONE


async def notify(plane: ControlPlane, job: Job) -> Outcome:
    """Ask each cluster's Receiver to pull now. Best effort: the interval pulls anyway."""
    await nudge(plane, job)
    return DONE


async def nudge(plane: ControlPlane, job: Job, only: Collection[str] | None = None) -> None:
    """Call the Receivers of the environment's clusters (``only``: of these cluster ids)."""
    environment_id, _ = job.target()
    async with plane.db.session() as session:
        targets = [
            receivers.Target(c.id, c.receiver_url, plane.cipher.decrypt(c.token_cipher))
            for c in await org_clusters(session, job.org_id, environment_id)
            if c.receiver_url and c.token_cipher and (only is None or c.id in only)
        ]
    try:
        outcomes = await receivers.trigger(targets, timeout=plane.settings.receiver_timeout_seconds)
    except Exception as exc:  # never fail a published deployment over a nudge
        log.warning("calling the receivers of deployment %s failed", job.id, exc_info=True)
        outcomes = [
            receivers.Outcome(t.cluster, False, f"receiver call failed: {exc}") for t in targets
        ]
    if outcomes:
        async with plane.db.session() as session:
            for outcome in outcomes:
                session.add(
                    TimelineEntry(
                        deployment_id=job.id,
                        cluster_id=outcome.cluster,
                        severity="info" if outcome.ok else "warning",
                        reason="receiver",
                        message=outcome.detail,
                    )
                )


# ---- the pipelines ---------------------------------------------------------------------------

BUILD = Step(
    "building",
    build,
    lambda j: (
        f"building {j.source_ref or 'the release'}"
        + (f" at {j.source_revision[:12]}" if j.source_revision else "")
        + f", config v{j.config_version or 0}"
    ),
)
PUSH = Step("pushing", push, lambda j: "pushing and signing the release")
APPROVAL = Step("approval", approval, lambda j: f"does {j.environment} need approval?")
WINDOW = Step("window", window, lambda j: f"is {j.environment}'s delivery window open?")
PLACE = Step("placing", place, lambda j: f"listing {j.app} in {j.org}/{j.environment}")
UNPLACE = Step("unplacing", unplace, lambda j: f"removing {j.app} from {j.org}/{j.environment}")
SYNC_ROOT = Step("sync-root", sync_root, lambda j: f"publishing sync root {j.org}/{j.environment}")
SYNC_ROOT_PUBLISHES = Step(SYNC_ROOT.name, sync_root, SYNC_ROOT.describe, publishes=True)
TAG = Step("tagging", tag, lambda j: f"moving tag {j.environment}", publishes=True)
NOTIFY = Step("receivers", notify, lambda j: "asking the clusters to pull now")

PIPELINES: dict[str, tuple[Step, ...]] = {
    states.DEPLOY: (BUILD, PUSH, APPROVAL, WINDOW, PLACE, SYNC_ROOT, TAG, NOTIFY),
    states.ROTATE: (BUILD, PUSH, APPROVAL, WINDOW, PLACE, SYNC_ROOT, TAG, NOTIFY),
    states.PROMOTE: (APPROVAL, WINDOW, PLACE, SYNC_ROOT, TAG, NOTIFY),
    states.ROLLBACK: (PLACE, SYNC_ROOT, TAG, NOTIFY),
    states.UNDEPLOY: (UNPLACE, SYNC_ROOT_PUBLISHES, NOTIFY),
    # A pushed tag's release: built and pushed (signed) by whichever replica claims it, so a
    # replica that stops after the webhook was answered loses nothing.
    states.BUILD: (BUILD, PUSH),
}


def steps(kind: str) -> tuple[Step, ...]:
    return PIPELINES[kind]
