"""Outbound notifications: webhooks per org or app, CloudEvents over HTTP (or a Slack/Teams-style
``{"text": …}`` body), HMAC-signed, retried with backoff, disabled after repeated failures.

Durable from end to end, no fire-and-forget task:

1. :func:`emit` adds an event row (the outbox) in the transaction that made it happen: a
   deployment queued, awaiting approval, a wave finished, halted (with Flux's message), rolled
   back, ready, failed.
2. A :class:`Sender` in every replica fans each event out to the hooks that match it (one
   delivery row per hook; a conditional update makes sure only one replica does it), then
   sends due deliveries, oldest first and one at a time per hook (so a receiver sees them in
   order), each claimed under a lease like a deployment.
3. A failed try waits as ``fjord.retry``'s policy says (Retry-After honoured) and is tried again
   by any replica; a delivery that used all its tries, or got an answer that will not change
   (4xx other than 408/429), failed. After ``notification_disable_after`` failed deliveries
   in a row the hook is disabled (its pending ones fail with it) until someone enables it.

Signature: ``X-Fjord-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` with the hook's
secret (shown once when the hook is made, encrypted at rest), like the events Flux sends us.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx2
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from fjord.control import audit, catalog
from fjord.control.errors import InvalidError, NotFoundError
from fjord.control.models import (
    App,
    Deployment,
    Environment,
    NotificationDelivery,
    NotificationEvent,
    NotificationHook,
    Org,
    Release,
    utcnow,
)
from fjord.control.plane import ControlPlane
from fjord.control.roles import Actor, Role
from fjord.control.secrets import new_token
from fjord.control.views import CreatedHook, DeliveryView, HookView
from fjord.retry import RetryPolicy, is_transient_status, parse_retry_after

log = logging.getLogger(__name__)

PREFIX = "dev.fjord.deployment."
QUEUED = PREFIX + "queued"
AWAITING_APPROVAL = PREFIX + "awaiting_approval"
WAVE_FINISHED = PREFIX + "wave_finished"
HALTED = PREFIX + "halted"
ROLLED_BACK = PREFIX + "rolled_back"
READY = PREFIX + "ready"
FAILED = PREFIX + "failed"
EVENT_TYPES = (QUEUED, AWAITING_APPROVAL, WAVE_FINISHED, HALTED, ROLLED_BACK, READY, FAILED)

FORMATS = ("cloudevents", "slack")
SIGNATURE_HEADER = "X-Fjord-Signature"
PENDING, DELIVERED, FAILED_DELIVERY = "pending", "delivered", "failed"
LEASE = dt.timedelta(seconds=60)


def emit(
    session: AsyncSession, deployment_id: int, event_type: str, message: str, **data: Any
) -> None:
    """Queue an event about a deployment, in the caller's transaction."""
    session.add(
        NotificationEvent(
            deployment_id=deployment_id,
            event_type=event_type,
            message=message,
            data=data,
            at=utcnow(),
            fanned_out=False,
        )
    )


# ---- pure: bodies, signatures, retry decisions -----------------------------------------------


def cloud_event(
    event: NotificationEvent, org: str, app: str, environment: str, deployment: Deployment,
    digest: str | None,
) -> dict[str, Any]:  # fmt: skip
    """A CloudEvents 1.0 event in structured mode (the JSON the receiver gets)."""
    return {
        "specversion": "1.0",
        "id": f"fjord-event-{event.id}",
        "source": f"/fjord/{org}/{app}",
        "type": event.event_type,
        "subject": f"deployments/{deployment.id}",
        "time": event.at.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": {
            "deployment": deployment.id,
            "org": org,
            "app": app,
            "environment": environment,
            "kind": deployment.kind,
            "digest": digest,
            "message": event.message,
            **event.data,
        },
    }


def slack_text(event: dict[str, Any]) -> str:
    data = event["data"]
    what = event["type"].removeprefix(PREFIX).replace("_", " ")
    text = f"{data['org']}/{data['app']} → {data['environment']}: deployment {data['deployment']}"
    text += f" ({data['kind']}) {what}"
    return f"{text}: {data['message']}" if data.get("message") else text


def body_of(format_: str, event: dict[str, Any]) -> tuple[bytes, str]:
    """The bytes sent and their content type, per the hook's format."""
    if format_ == "slack":
        return json.dumps({"text": slack_text(event)}).encode(), "application/json"
    return json.dumps(event, sort_keys=True).encode(), "application/cloudevents+json"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Verdict:
    delivered: bool
    retry_in: float | None  # seconds until the next try; None: no more tries
    detail: str


def judge(
    policy: RetryPolicy,
    attempt: int,
    status: int | None,
    error: str | None,
    retry_after: float | None = None,
) -> Verdict:
    """What one try's outcome means: delivered, try again after a wait, or failed for good."""
    if status is not None and 200 <= status < 300:
        return Verdict(True, None, f"answered {status}")
    detail = error or f"answered {status}"
    transient = status is None or is_transient_status(status)
    if not transient or attempt >= policy.attempts:
        return Verdict(False, None, detail)
    return Verdict(False, policy.wait(attempt, retry_after), detail)


# ---- the sender ------------------------------------------------------------------------------


def _policy(plane: ControlPlane) -> RetryPolicy:
    first = plane.settings.notification_first_wait_seconds
    return RetryPolicy(
        attempts=plane.settings.notification_attempts,
        initial_delay=first,
        max_delay=max(first, 300.0),
        deadline=float("inf"),
    )


async def _fan_out(plane: ControlPlane) -> None:
    async with plane.db.session() as session:
        events = (
            await session.scalars(
                select(NotificationEvent)
                .where(NotificationEvent.fanned_out.is_(False))
                .order_by(NotificationEvent.id)
                .limit(100)
            )
        ).all()
    for event in events:
        async with plane.db.session() as session:
            taken = await session.execute(
                update(NotificationEvent)
                .where(NotificationEvent.id == event.id, NotificationEvent.fanned_out.is_(False))
                .values(fanned_out=True)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another replica did it
            await _deliveries_for(session, event)


async def _deliveries_for(session: AsyncSession, event: NotificationEvent) -> None:
    deployment = await session.get(Deployment, event.deployment_id)
    assert deployment is not None
    app = await session.get(App, deployment.app_id)
    env = await session.get(Environment, deployment.environment_id)
    assert app is not None and env is not None  # noqa: PT018
    org = await session.get(Org, app.org_id)
    assert org is not None
    release = await session.get(Release, deployment.release_id) if deployment.release_id else None
    payload = cloud_event(
        event, org.name, app.name, env.name, deployment, release.digest if release else None
    )
    hooks = (
        await session.scalars(
            select(NotificationHook).where(
                NotificationHook.org_id == org.id,
                NotificationHook.enabled.is_(True),
                or_(NotificationHook.app_id.is_(None), NotificationHook.app_id == app.id),
            )
        )
    ).all()
    for hook in hooks:
        session.add(
            NotificationDelivery(
                hook_id=hook.id,
                event_id=payload["id"],
                event_type=event.event_type,
                payload=payload,
                state=PENDING,
                attempts=0,
                next_attempt_at=event.at,
                created_at=utcnow(),
            )
        )


async def _claim(plane: ControlPlane) -> list[int]:
    """Due deliveries at the head of their hook's queue, claimed for this replica."""
    now = utcnow()
    older = aliased(NotificationDelivery)
    ahead = (
        select(older.id)
        .where(
            older.hook_id == NotificationDelivery.hook_id,
            older.state == PENDING,
            older.id < NotificationDelivery.id,
        )
        .exists()
    )
    due = and_(
        NotificationDelivery.state == PENDING,
        NotificationDelivery.next_attempt_at <= now,
        or_(NotificationDelivery.owner.is_(None), NotificationDelivery.lease_expires < now),
        ~ahead,
    )
    async with plane.db.session() as session:
        found = (
            await session.scalars(
                select(NotificationDelivery.id)
                .where(due)
                .order_by(NotificationDelivery.id)
                .limit(20)
            )
        ).all()
    claimed = []
    for delivery_id in found:
        async with plane.db.session() as session:
            done = await session.execute(
                update(NotificationDelivery)
                .where(NotificationDelivery.id == delivery_id, due)
                .values(owner=plane.replica, lease_expires=now + LEASE)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(delivery_id)
    return claimed


async def _send_one(plane: ControlPlane, client: httpx2.AsyncClient, delivery_id: int) -> None:
    async with plane.db.session() as session:
        delivery = await session.get(NotificationDelivery, delivery_id)
        assert delivery is not None
        hook = await session.get(NotificationHook, delivery.hook_id)
        assert hook is not None
        url, fmt, secret = hook.url, hook.format, plane.cipher.decrypt(hook.secret_cipher)
        payload, attempt = delivery.payload, delivery.attempts + 1
    body, content_type = body_of(fmt, payload)
    headers = {
        "Content-Type": content_type,
        SIGNATURE_HEADER: signature(secret, body),
        "User-Agent": "fjord-notifications",
    }
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    try:
        response = await client.post(url, content=body, headers=headers)
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
    except httpx2.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    verdict = judge(_policy(plane), attempt, status, error, retry_after)
    await _record(plane, delivery_id, attempt, status, verdict)


async def _record(
    plane: ControlPlane, delivery_id: int, attempt: int, status: int | None, verdict: Verdict
) -> None:
    now = utcnow()
    async with plane.db.session() as session:
        delivery = await session.get(NotificationDelivery, delivery_id, with_for_update=True)
        assert delivery is not None
        hook = await session.get(NotificationHook, delivery.hook_id, with_for_update=True)
        assert hook is not None
        delivery.attempts, delivery.last_status = attempt, status
        delivery.last_error = None if verdict.delivered else verdict.detail
        delivery.owner, delivery.lease_expires = None, None
        if verdict.delivered:
            delivery.state, delivery.delivered_at = DELIVERED, now
            hook.failures = 0
        elif verdict.retry_in is not None:
            delivery.next_attempt_at = now + dt.timedelta(seconds=verdict.retry_in)
        else:
            delivery.state = FAILED_DELIVERY
            hook.failures += 1
            if hook.failures >= plane.settings.notification_disable_after and hook.enabled:
                await _disable(session, hook, verdict.detail)


async def _disable(session: AsyncSession, hook: NotificationHook, detail: str) -> None:
    hook.enabled = False
    hook.disabled_reason = (
        f"disabled after {hook.failures} failed deliveries in a row (last: {detail})"
    )
    await session.execute(
        update(NotificationDelivery)
        .where(NotificationDelivery.hook_id == hook.id, NotificationDelivery.state == PENDING)
        .values(state=FAILED_DELIVERY, last_error="the hook was disabled", owner=None)
    )


async def pump(plane: ControlPlane) -> int:
    """One round: fan new events out, send what is due. Returns how many were sent."""
    await _fan_out(plane)
    claimed = await _claim(plane)
    if claimed:
        async with httpx2.AsyncClient(
            timeout=plane.settings.notification_timeout_seconds
        ) as client:
            await asyncio.gather(*(_send_one(plane, client, d) for d in claimed))
    return len(claimed)


class Sender:
    """The replica's notification loop: a round every poll, at once again after a busy one."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"fjord-notify-{self.plane.replica}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            sent = 0
            try:
                sent = await pump(self.plane)
            except Exception:  # a database or network hiccup: the next round tries again
                log.warning("sending notifications failed", exc_info=True)
            if not sent:
                await asyncio.sleep(self.plane.settings.poll_seconds)


# ---- hooks as people manage them -------------------------------------------------------------


def _hook_view(hook: NotificationHook, org: str, app: str | None) -> HookView:
    return HookView(
        id=hook.id,
        org=org,
        app=app,
        url=hook.url,
        format=hook.format,
        enabled=hook.enabled,
        failures=hook.failures,
        disabled_reason=hook.disabled_reason,
        created_by=hook.created_by,
        created_at=hook.created_at,
    )


def _check_url(url: str) -> str:
    parsed = httpx2.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidError(
            f"notification url {url!r} is not an http(s) URL",
            hint="e.g. https://hooks.example.org/fjord",
        )
    if parsed.userinfo:
        raise InvalidError("the notification url must not carry credentials")
    return url


async def create_hook(
    plane: ControlPlane,
    actor: Actor,
    org: str,
    url: str,
    *,
    app: str | None = None,
    format_: str = "cloudevents",
) -> CreatedHook:
    actor.require(org, Role.app_admin)
    if format_ not in FORMATS:
        raise InvalidError(f"unknown format {format_!r}", hint=f"one of {', '.join(FORMATS)}")
    secret = new_token()
    async with plane.db.session() as session:
        org_row = await catalog.org(session, org)
        app_id = (await catalog.app(session, org, app)).app.id if app else None
        hook = NotificationHook(
            org_id=org_row.id,
            app_id=app_id,
            url=_check_url(url),
            format=format_,
            secret_cipher=plane.cipher.encrypt(secret),
            enabled=True,
            failures=0,
            created_by=actor.name,
            created_at=utcnow(),
        )
        session.add(hook)
        await session.flush()
        audit.record(
            session, actor, "notification.create", f"{org}/{app}" if app else org, org=org,
            hook=hook.id, url=url, format=format_,
        )  # fmt: skip
        return CreatedHook(secret=secret, hook=_hook_view(hook, org, app))


async def _hook(
    session: AsyncSession, actor: Actor, hook_id: int, role: Role
) -> tuple[NotificationHook, str, str | None]:
    hook = await session.get(NotificationHook, hook_id)
    org = await session.get(Org, hook.org_id) if hook else None
    if hook is None or org is None or actor.role_in(org.name) is None:
        raise NotFoundError(f"no notification hook {hook_id}")
    actor.require(org.name, role)
    app = await session.get(App, hook.app_id) if hook.app_id else None
    return hook, org.name, app.name if app else None


async def list_hooks(plane: ControlPlane, actor: Actor, org: str) -> list[HookView]:
    actor.require(org, Role.app_admin)
    async with plane.db.session() as session:
        org_row = await catalog.org(session, org)
        rows = (
            await session.scalars(
                select(NotificationHook)
                .where(NotificationHook.org_id == org_row.id)
                .order_by(NotificationHook.id)
            )
        ).all()
        apps = {
            a.id: a.name for a in await session.scalars(select(App).where(App.org_id == org_row.id))
        }
    return [_hook_view(h, org, apps.get(h.app_id) if h.app_id else None) for h in rows]


async def enable_hook(plane: ControlPlane, actor: Actor, hook_id: int) -> HookView:
    """Re-enable a hook disabled after failures (new events reach it again); audited."""
    async with plane.db.session() as session:
        hook, org, app = await _hook(session, actor, hook_id, Role.app_admin)
        hook.enabled, hook.failures, hook.disabled_reason = True, 0, None
        audit.record(session, actor, "notification.enable", f"hook {hook_id}", org=org)
        return _hook_view(hook, org, app)


async def deliveries(
    plane: ControlPlane, actor: Actor, hook_id: int, limit: int = 100
) -> list[DeliveryView]:
    """The hook's delivery log, newest first."""
    async with plane.db.session() as session:
        await _hook(session, actor, hook_id, Role.app_admin)
        rows = (
            await session.scalars(
                select(NotificationDelivery)
                .where(NotificationDelivery.hook_id == hook_id)
                .order_by(NotificationDelivery.id.desc())
                .limit(limit)
            )
        ).all()
    return [
        DeliveryView(
            id=r.id,
            event_id=r.event_id,
            event_type=r.event_type,
            state=r.state,
            attempts=r.attempts,
            last_status=r.last_status,
            last_error=r.last_error,
            created_at=r.created_at,
            next_attempt_at=r.next_attempt_at,
            delivered_at=r.delivered_at,
        )
        for r in rows
    ]
