"""Flux events in: authenticate per cluster, record once, update what runs where.

Each cluster signs its events with its own token (``X-Signature: sha256=<HMAC of the raw
body>``, Flux's generic-hmac provider). A missing or wrong signature, or an unknown cluster,
gets the same 401 and nothing is written. The SHA-256 of the body identifies an event, so a
replay is recorded once and changes nothing.

An OCIRepository's revision names the digest it pulled (``tt02@sha256:…``); a Bucket's is a
hash of its objects' keys and ETags. For orgs on Bucket sources the digest behind an app's
revision is read from the tree blob itself (``control.stores.tree_digest``): only while the tree
still is that revision, so an event about a tree replaced since names no digest (and never
looks like a release fjord did not make).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fjord.control import audit, flux, states
from fjord.control.errors import InvalidError, UnauthenticatedError
from fjord.control.models import (
    App,
    Cluster,
    ClusterApp,
    Deployment,
    Environment,
    FluxEvent,
    Org,
    Release,
    TimelineEntry,
    utcnow,
)
from fjord.control.plane import ControlPlane
from fjord.control.progress import evaluate
from fjord.control.roles import Actor
from fjord.control.stores import is_bucket, tree_digest
from fjord.releases import repository as app_repository

_DIGESTS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "sha512": hashlib.sha512}
_REFUSED = "missing or invalid event signature"
UNKNOWN_REVISION = "fjord/UnknownRevision"
# Who the audit log names for what a cluster reported on its own.
FLUX = Actor(name="flux")


def sign(token: str, body: bytes) -> str:
    """The header value Flux's generic-hmac provider sends for ``body``."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(token: str, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    algorithm, _, given = header.partition("=")
    digest = _DIGESTS.get(algorithm.strip().lower())
    if digest is None:
        return False
    expected = hmac.new(token.encode(), body, digest).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


@dataclass(frozen=True)
class FluxEventData:
    kind: str
    namespace: str
    name: str
    severity: str
    reason: str
    message: str
    revision: str | None
    at: dt.datetime | None = None  # the cluster's clock, second precision
    # A Bucket's revision is no digest: then ``digest`` is the one read from the store, if any.
    bucket: bool = False
    bucket_digest: str | None = None

    @property
    def digest(self) -> str | None:
        if self.bucket:
            return self.bucket_digest
        if self.revision and "sha256:" in self.revision:
            return "sha256:" + self.revision.rsplit("sha256:", 1)[1]
        return None


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("contains a NUL character")
    return text


# PostgreSQL refuses NUL in text, and a string longer than its column: both would be a 500.
# The widths are those of the flux_events columns.
_Text = Annotated[str, AfterValidator(_no_nul)]


class _InvolvedObject(BaseModel):
    kind: _Text = Field(max_length=100)
    namespace: _Text = Field(max_length=100)
    name: _Text = Field(max_length=253)


class _EventBody(BaseModel):
    """The fields fjord reads from Flux's event JSON (``eventv1.Event``); others are ignored."""

    involvedObject: _InvolvedObject
    severity: _Text = Field(default="info", max_length=10)
    reason: _Text = Field(default="", max_length=100)
    message: _Text = ""
    metadata: dict[str, str | int | float | bool | None] | None = None
    timestamp: Any = None


_REVISION_WIDTH = 200


def parse_event(body: bytes) -> FluxEventData:
    """Flux's event JSON, or :class:`InvalidError` naming every field that is wrong."""
    try:
        data = _EventBody.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(the body)'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise InvalidError(
            f"not a Flux event: {problems}",
            "post Flux notification-controller events (eventv1.Event JSON) here",
        ) from exc
    # Keys arrive without the group prefix (``revision``); accept prefixed ones too.
    revision = None
    for key, value in (data.metadata or {}).items():
        if key == "revision" or key.endswith("/revision"):
            revision = str(value)
    if revision is not None and (len(revision) > _REVISION_WIDTH or "\x00" in revision):
        raise InvalidError(
            f"not a Flux event: metadata.revision: longer than {_REVISION_WIDTH} characters "
            "or contains a NUL character"
        )
    involved = data.involvedObject
    return FluxEventData(
        kind=involved.kind,
        namespace=involved.namespace,
        name=involved.name,
        severity=data.severity,
        reason=data.reason,
        message=data.message,
        revision=revision,
        at=_timestamp(data.timestamp),
    )


def _timestamp(value: Any) -> dt.datetime | None:
    """Flux's RFC 3339 ``timestamp``; None when absent or unreadable (then arrival order rules)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class IngestResult:
    recorded: bool  # False: a replay of an event already recorded
    app: str | None


async def ingest(
    plane: ControlPlane, cluster_id: str, body: bytes, signature: str | None
) -> IngestResult:
    # Concurrent events about one app can race on its row in PostgreSQL; the loser retries.
    for attempt in range(5):
        try:
            async with plane.db.session() as session:
                cluster = await session.get(Cluster, cluster_id)
                token = (
                    plane.cipher.decrypt(cluster.token_cipher)
                    if cluster is not None and cluster.token_cipher
                    else None
                )
                # Nothing is written before this check passes.
                if token is None or not signature_valid(token, body, signature):
                    raise UnauthenticatedError(_REFUSED)
                event = await _with_bucket_digest(plane, session, cluster, parse_event(body))
                return await _apply(session, cluster_id, event, hashlib.sha256(body).hexdigest())
        except IntegrityError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


async def _with_bucket_digest(
    plane: ControlPlane, session: AsyncSession, cluster: Cluster | None, event: FluxEventData
) -> FluxEventData:
    """For an org on Bucket sources: the event, with the digest its app's tree holds."""
    if cluster is None:
        return event
    org = await session.get(Org, cluster.org_id)
    if org is None or org.name not in plane.settings.platform.orgs:
        return event
    if not is_bucket(plane.settings, org.name):
        return event
    app = _app_of(org.name, event)
    environment = await session.get(Environment, cluster.environment_id)
    digest = None
    if app is not None and environment is not None and event.revision:
        digest = await tree_digest(
            plane.settings,
            org.name,
            app_repository(org.name, app),
            environment.name,
            event.revision,
        )
    return dataclasses.replace(event, bucket=True, bucket_digest=digest)


async def _apply(
    session: AsyncSession, cluster_id: str, event: FluxEventData, event_hash: str
) -> IngestResult:
    duplicate = (
        await session.scalars(
            select(FluxEvent.id).where(
                FluxEvent.cluster_id == cluster_id, FluxEvent.event_hash == event_hash
            )
        )
    ).first()
    if duplicate is not None:
        return IngestResult(recorded=False, app=None)
    session.add(
        FluxEvent(
            cluster_id=cluster_id,
            event_hash=event_hash,
            kind=event.kind,
            namespace=event.namespace,
            name=event.name,
            severity=event.severity,
            reason=event.reason,
            message=event.message,
            revision=event.revision,
        )
    )
    await session.flush()  # the unique key turns a concurrent replay into an IntegrityError
    cluster = await session.get(Cluster, cluster_id)
    assert cluster is not None
    org = await session.get(Org, cluster.org_id)
    assert org is not None
    if event.namespace == flux.FLUX_NAMESPACE and event.name == flux.SYNC_NAME:
        if event.kind == "Kustomization":
            await _root_event(session, cluster, event)
        return IngestResult(recorded=True, app=None)
    app_name = _app_of(org.name, event)
    if app_name is None:
        return IngestResult(recorded=True, app=None)
    app = (
        await session.scalars(select(App).where(App.org_id == org.id, App.name == app_name))
    ).one_or_none()
    if app is None:
        return IngestResult(recorded=True, app=None)
    await _app_event(session, cluster, org, app, event)
    return IngestResult(recorded=True, app=f"{org.name}/{app_name}")


def _app_of(org: str, event: FluxEventData) -> str | None:
    if event.kind == "Kustomization" and event.namespace == flux.app_namespace(org, event.name):
        return event.name
    prefix = f"{org}-"
    if (
        event.kind in flux.SOURCE_KINDS
        and event.namespace == flux.FLUX_NAMESPACE
        and event.name.startswith(prefix)
    ):
        return event.name[len(prefix) :]
    return None


def _older(event: FluxEventData, shown: dt.datetime | None) -> bool:
    """Whether the cluster sent ``event`` before the one already shown (Flux retries failed
    deliveries, so an old event can arrive after newer ones)."""
    return event.at is not None and shown is not None and event.at < shown


def _is_success(event: FluxEventData) -> bool:
    return event.kind == "Kustomization" and event.reason == "ReconciliationSucceeded"


def _source_recovered(row: ClusterApp, event: FluxEventData) -> bool:
    return (
        row.ready is False
        and (row.reason or "").split("/")[0] in flux.SOURCE_KINDS
        and event.kind in flux.SOURCE_KINDS
        and event.reason == "Succeeded"
        and event.digest is not None
        and event.digest == row.applied_digest
    )


async def _root_event(session: AsyncSession, cluster: Cluster, event: FluxEventData) -> None:
    if _older(event, cluster.sync_event_at):
        return  # a late delivery: the recorded FluxEvent row keeps it as history
    if event.at is not None:
        cluster.sync_event_at = event.at
    if event.severity == "error":
        cluster.sync_ready = False
    elif _is_success(event):
        cluster.sync_ready = True
    elif event.revision == cluster.sync_revision:
        return
    else:
        cluster.sync_ready = None
    if event.revision:
        cluster.sync_revision = event.revision
    cluster.sync_message = event.message
    undeploys = (
        await session.scalars(
            select(Deployment)
            .join(App, App.id == Deployment.app_id)
            .where(
                App.org_id == cluster.org_id,
                Deployment.environment_id == cluster.environment_id,
                Deployment.kind == states.UNDEPLOY,
                Deployment.state == states.PROGRESSING,
            )
        )
    ).all()
    for deployment in undeploys:
        await evaluate(session, deployment)


async def _app_event(
    session: AsyncSession, cluster: Cluster, org: Org, app: App, event: FluxEventData
) -> None:
    row = await session.get(ClusterApp, (cluster.id, app.id))
    if row is None:
        row = ClusterApp(cluster_id=cluster.id, app_id=app.id)
        session.add(row)
    if _older(event, row.event_at):
        # A late delivery of an older event: keep it in the timeline, not in the cell.
        await _note(session, cluster, app, event)
        return
    if event.at is not None:
        row.event_at = event.at
    if await _foreign(session, app, event):
        await _report_foreign(session, cluster, org, app, row, event)
        return
    if event.severity == "error":
        row.ready = False
    elif _is_success(event):
        row.ready = True
        row.applied_revision, row.applied_digest = event.revision, event.digest
    elif event.digest is not None and event.digest != row.applied_digest:
        row.ready = None  # a new revision is on its way
    elif _source_recovered(row, event):
        # The source failed to pull while the applied revision kept running, and works again:
        # Flux says so once ("Succeeded" for the same revision; source-controller reports
        # recovery from fetch failures only); the Kustomization never failed, so no other event
        # would ever clear the failure.
        row.ready = True
    else:
        # News about what already runs (drift fixes, re-pulls): nothing changes.
        await _note(session, cluster, app, event)
        return
    row.revision, row.digest = event.revision, event.digest
    row.reason, row.message = f"{event.kind}/{event.reason}"[:100], event.message
    row.updated_at = utcnow()
    await _note(session, cluster, app, event)


async def _foreign(session: AsyncSession, app: App, event: FluxEventData) -> bool:
    """Whether Flux accepted a revision of the app that fjord never released.

    Only fjord moves environment tags, and every release it publishes is recorded first, so an
    unknown digest means someone pushed to the registry directly. Flux's key-based signature
    check does not tie a signature to the digest it signs, so this check is the safety net.
    Flux's own refusals (errors) are reported as they are. Asked for every event, not cached
    on the cell: one indexed lookup, and no remembered "known" digest to go stale.
    """
    if event.severity == "error" or event.digest is None:
        return False
    released = await session.scalars(
        select(Release.id).where(Release.app_id == app.id, Release.digest == event.digest)
    )
    return released.first() is None


async def _report_foreign(
    session: AsyncSession,
    cluster: Cluster,
    org: Org,
    app: App,
    row: ClusterApp,
    event: FluxEventData,
) -> None:
    first_report = not (row.reason == UNKNOWN_REVISION and row.digest == event.digest)
    if _is_success(event):
        row.applied_revision, row.applied_digest = event.revision, event.digest
    row.ready = False
    row.revision, row.digest = event.revision, event.digest
    row.reason = UNKNOWN_REVISION
    row.message = (
        f"cluster {cluster.id} reports {event.revision}, which fjord never released for "
        f"{org.name}/{app.name}: the registry tag was changed outside fjord. Find out who can "
        "push to the registry, then deploy or roll back to a fjord release."
    )
    row.updated_at = utcnow()
    if first_report:
        audit.record(
            session,
            FLUX,
            "release.unknown_revision",
            f"{org.name}/{app.name}",
            org=org.name,
            cluster=cluster.id,
            revision=event.revision,
            event=f"{event.kind}/{event.reason}",
        )
    await _note(session, cluster, app, event)


async def _note(session: AsyncSession, cluster: Cluster, app: App, event: FluxEventData) -> None:
    """Add the event to the timeline of the app's unfinished deployment here, and re-evaluate
    (a rollout in waves: its wave step is due at once, so the gate sees the report now)."""
    deployment = (
        await session.scalars(
            select(Deployment)
            .where(
                Deployment.app_id == app.id,
                Deployment.environment_id == cluster.environment_id,
                Deployment.state.in_(FOLLOWED),
            )
            .order_by(Deployment.id.desc())
            .limit(1)
        )
    ).one_or_none()
    if deployment is None:
        return
    session.add(
        TimelineEntry(
            deployment_id=deployment.id,
            cluster_id=cluster.id,
            severity=event.severity,
            reason=f"{event.kind}/{event.reason}"[:100],
            message=event.message,
        )
    )
    if deployment.state == states.ROLLING_OUT:
        deployment.not_before = utcnow()
    await evaluate(session, deployment)


# Deployments whose timeline shows the clusters' events.
FOLLOWED = (states.PROGRESSING, states.ROLLING_OUT, states.HALTED)
