"""Webhook deliveries checked by the control plane: the repository must be known (404), the
signature must verify and the delivery id be new (401), and only then is anything decided."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from test_control_support import ADMIN, opened, settings

from fjord.control import NotFoundError, UnauthenticatedError, apps
from fjord.control.models import App, Deployment, WebhookDelivery
from fjord.control.plane import ControlPlane
from fjord.control.webhooks import receive
from fjord.sources.gitea import sign

REPO = "http://gitea.test/ttd/skjema.git"
SECRET = "hook-secret"


async def _with_hook(plane: ControlPlane) -> None:
    """An app whose webhook secret is known (as if Gitea had been configured at creation)."""
    await apps.create_app(
        plane, ADMIN, "ttd/skjema", REPO, deploy_branch="main", deploy_environment="tt02"
    )
    async with plane.db.session() as session:
        row = (await session.scalars(select(App))).one()
        row.webhook_secret_cipher = plane.cipher.encrypt(SECRET)
        row.webhook_id = 1


def _body(ref: str, url: str = REPO) -> bytes:
    return json.dumps(
        {"ref": ref, "after": "a" * 40, "repository": {"full_name": "ttd/skjema", "clone_url": url}}
    ).encode()


async def _deliveries(plane: ControlPlane) -> int:
    async with plane.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0)


async def test_unknown_forged_and_replayed_deliveries_are_refused(tmp_path: Path) -> None:
    async with opened(settings(tmp_path)) as plane:
        await _with_hook(plane)
        tag = _body("refs/tags/v1.0.0")
        other = _body("refs/tags/v1.0.0", "http://gitea.test/ttd/unknown.git")
        with pytest.raises(NotFoundError, match="ttd/skjema"):
            await receive(plane, other, event="push", delivery="d0", signature=sign(SECRET, other))
        for signature in (None, "", sign("wrong", tag), sign(SECRET, tag + b" ")):
            with pytest.raises(UnauthenticatedError, match="signature"):
                await receive(plane, tag, event="push", delivery="d1", signature=signature)
        with pytest.raises(UnauthenticatedError, match="X-Gitea-Delivery"):
            await receive(plane, tag, event="push", delivery=None, signature=sign(SECRET, tag))
        assert await _deliveries(plane) == 0

        action = await receive(plane, tag, event="push", delivery="d1", signature=sign(SECRET, tag))
        assert (action.kind, action.app, action.ref) == ("release", "ttd/skjema", "v1.0.0")
        with pytest.raises(UnauthenticatedError, match="already received"):
            await receive(plane, tag, event="push", delivery="d1", signature=sign(SECRET, tag))
        branch = _body("refs/heads/main")
        pushed = await receive(
            plane, branch, event="push", delivery="d2", signature=sign(SECRET, branch)
        )
        assert (pushed.kind, pushed.ref, pushed.environment) == ("deploy", "main", "tt02")
        assert await _deliveries(plane) == 2
        # Both were queued before the answer, in the delivery's transaction: a replica that
        # stops now loses nothing (a worker anywhere claims them).
        async with plane.db.session() as session:
            jobs = (await session.scalars(select(Deployment).order_by(Deployment.id))).all()
        assert [(j.kind, j.state, j.source_ref, j.source_revision) for j in jobs] == [
            ("build", "queued", "v1.0.0", "a" * 40),
            ("deploy", "queued", "main", "a" * 40),
        ]
        assert jobs[0].environment_id is None
        assert (jobs[0].source_version, jobs[1].source_version) == ("1.0.0", None)
