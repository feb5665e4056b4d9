"""Gitea webhooks: registered when an app is created; deliveries verified, then acted on.

A delivery names its repository; fjord finds the apps registered with that clone URL (none: 404)
and accepts it only if ``X-Gitea-Signature`` is the HMAC of the raw body with one of those apps'
hook secrets, and its ``X-Gitea-Delivery`` id was never seen (forged or replayed: 401). Then:

* a pushed tag matching the app's ``tag_pattern`` builds a release from that tag;
* a push to the app's ``deploy_branch`` deploys the pushed commit to ``deploy_environment``.

What it asks for is queued in the same transaction that records the delivery: a ``build`` job
(a tag) or a deployment (a branch head) with the pushed commit pinned, run by the worker of
whichever replica claims it (``pipeline.py``, ``worker.py``). Nothing is fetched or built while
Gitea waits for the answer, and a replica that stops after answering loses nothing: the job is in
the database before the 202. Failures of the job reach Gitea as a ``failure`` commit status
(``statuses.py``).
"""

from __future__ import annotations

import fnmatch
import json
import logging
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fjord.control import builds, catalog, deploys
from fjord.control.errors import InvalidError, NotFoundError, UnauthenticatedError
from fjord.control.models import App, Org, WebhookDelivery
from fjord.control.plane import ControlPlane
from fjord.control.roles import Actor, system_actor
from fjord.sources import Resolved
from fjord.sources.gitea import Gitea, repository_of, verify_signature
from fjord.sources.mirror import display_url

log = logging.getLogger(__name__)

HOOK_PATH = "/api/hooks/gitea"
ZERO_SHA = "0" * 40


def webhook_actor() -> Actor:
    """Who the audit log names for what a webhook started."""
    return system_actor("gitea-webhook")


@dataclass(frozen=True)
class RepoHooks:
    """Webhooks of one repository on the configured Gitea."""

    gitea: Gitea
    repository: str
    target: str

    async def register(self, secret: str) -> int:
        return await self.gitea.create_hook(self.repository, self.target, secret)


def gitea_of(plane: ControlPlane) -> Gitea | None:
    settings = plane.settings
    if not (settings.gitea_url and settings.gitea_token):
        return None
    return Gitea(settings.gitea_url, settings.gitea_token)


def for_repository(plane: ControlPlane, repo: str) -> RepoHooks | None:
    """Hooks for ``repo`` when it lives on the configured Gitea; None otherwise."""
    gitea = gitea_of(plane)
    repository = repository_of(repo, gitea.url) if gitea else None
    if gitea is None or repository is None:
        return None
    return RepoHooks(gitea, repository, f"{plane.settings.public_url}{HOOK_PATH}")


def _key(url: str) -> str:
    """A clone URL compared without scheme noise, credentials or a ``.git`` suffix."""
    return display_url(url).rstrip("/").removesuffix(".git").lower()


@dataclass(frozen=True)
class Action:
    """What a verified delivery asks for: ``release`` (a tag) or ``deploy`` (a branch head)."""

    kind: str  # release | deploy | none
    app: str  # org/app
    ref: str | None = None  # the tag, or the pushed commit for a deploy
    environment: str | None = None
    detail: str = ""
    commit: str | None = None
    repository: str | None = None  # the clone URL the delivery named


def _parse(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise InvalidError(f"webhook body is not JSON: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("repository"), dict):
        raise InvalidError("webhook body names no repository")
    return payload


def decide(app: App, full_name: str, event: str, payload: dict[str, Any]) -> Action:
    """The action for a verified delivery (pure)."""
    ref = str(payload.get("ref") or "")
    after = str(payload.get("after") or "")
    if event != "push" or not after or after == ZERO_SHA:
        return Action("none", full_name, detail=f"{event} {ref}: nothing to do")
    if ref.startswith("refs/tags/"):
        tag = ref.removeprefix("refs/tags/")
        if app.tag_pattern and fnmatch.fnmatchcase(tag, app.tag_pattern):
            return Action("release", full_name, tag, detail=f"tag {tag}", commit=after)
        return Action("none", full_name, detail=f"tag {tag} does not match {app.tag_pattern!r}")
    if ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
        if app.deploy_branch == branch and app.deploy_environment:
            return Action(
                "deploy",
                full_name,
                branch,
                app.deploy_environment,
                detail=f"{branch} at {after[:12]} to {app.deploy_environment}",
                commit=after,
            )
        return Action("none", full_name, detail=f"branch {branch} has no deploy rule")
    return Action("none", full_name, detail=f"{ref}: nothing to do")


async def receive(
    plane: ControlPlane,
    body: bytes,
    *,
    event: str | None,
    delivery: str | None,
    signature: str | None,
) -> Action:
    """Verify a delivery, record it, and say what to do (see the module's doc)."""
    payload = _parse(body)
    repo = payload["repository"]
    urls = {_key(u) for u in (repo.get("clone_url"), repo.get("html_url")) if isinstance(u, str)}
    async with plane.db.session() as session:
        rows = (await session.execute(select(Org.name, App).join(Org, App.org_id == Org.id))).all()
        candidates = [(o, a) for o, a in rows if _key(a.source) in urls]
        if not candidates:
            raise NotFoundError(f"no app is registered for repository {repo.get('full_name')!r}")
        matched = next(
            (
                (o, a)
                for o, a in candidates
                if a.webhook_secret_cipher
                and verify_signature(plane.cipher.decrypt(a.webhook_secret_cipher), body, signature)
            ),
            None,
        )
        if matched is None:
            raise UnauthenticatedError("webhook signature does not verify")
        org_name, app = matched
        if not delivery:
            raise UnauthenticatedError("webhook delivery carries no X-Gitea-Delivery id")
        action = decide(app, f"{org_name}/{app.name}", event or "", payload)
        try:
            async with session.begin_nested():
                record = WebhookDelivery(
                    delivery=delivery[:100],
                    app_id=app.id,
                    event=(event or "")[:40],
                    ref=str(payload.get("ref") or "")[:300] or None,
                    outcome=f"{action.kind}: {action.detail}",
                )
                session.add(record)
        except IntegrityError:
            raise UnauthenticatedError(
                f"webhook delivery {delivery} was already received"
            ) from None
        if action.kind != "none":
            queued = await _queue(session, org_name, app, action)
            action = replace(action, detail=f"{action.detail}; {queued}")
            record.outcome = f"{action.kind}: {action.detail}"
    plane.work_queued()
    log.info("webhook %s for %s: %s %s", delivery, action.app, action.kind, action.detail)
    return action


async def _queue(session: AsyncSession, org_name: str, app: App, action: Action) -> str:
    """Queue ``action``'s job in the delivery's transaction (see the module's doc)."""
    assert action.ref is not None and action.commit is not None  # noqa: PT018
    ref = await catalog.app(session, org_name, app.name)
    if action.kind == "release":
        # The tag names the version; the commit is the one Gitea says the tag points at.
        version = builds.image_version(
            Resolved(app.source, action.ref, "tag", action.commit, (action.ref,))
        )
        source = deploys.Pinned(action.ref, action.commit, version, None)
        key = f"gitea-tag:{action.ref}:{action.commit}"
        return await deploys.queue_pushed(
            session, webhook_actor(), ref, source, environment=None, key=key
        )
    source = deploys.Pinned(action.ref, action.commit, None, None)
    key = f"gitea:{action.environment}:{action.commit}"
    return await deploys.queue_pushed(
        session, webhook_actor(), ref, source, environment=action.environment, key=key
    )
