"""Commit statuses in Gitea: each deployment of a release built from a commit reports there.

``pending`` while the deployment runs, ``success`` once every cluster is ready, ``failure`` when
it fails (or a newer deployment supersedes it), each with a link to the deployment in fjord's UI.
Reported by the control plane's periodic sweep from the deployments' recorded state, so any
replica can report any deployment and a Gitea outage only delays the status (retried next sweep).
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select

from fjord.control import states
from fjord.control.models import App, CommitStatus, Deployment, Environment, Org, Release, utcnow
from fjord.control.plane import ControlPlane
from fjord.control.webhooks import gitea_of
from fjord.sources import SourceError
from fjord.sources.gitea import STATUS_FAILURE, STATUS_PENDING, STATUS_SUCCESS, repository_of

log = logging.getLogger(__name__)

RECENT = dt.timedelta(days=1)  # older deployments are not reported (again)
MAX_ATTEMPTS = 10


def gitea_state(state: str) -> str:
    if state == states.READY:
        return STATUS_SUCCESS
    if state in (states.FAILED, states.SUPERSEDED):
        return STATUS_FAILURE
    return STATUS_PENDING


def deployment_url(public_url: str, org: str, app: str, deployment_id: int) -> str:
    return f"{public_url}/ui/apps/{org}/{app}#deployment-{deployment_id}"


def _description(deployment: Deployment, environment: str) -> str:
    what = f"{deployment.kind} to {environment}: {deployment.state.replace('_', ' ')}"
    return f"{what} ({deployment.reason})" if deployment.reason else what


async def report(plane: ControlPlane) -> int:
    """Post every status that changed since the last sweep; returns how many were posted."""
    gitea = gitea_of(plane)
    if gitea is None:
        return 0
    since = utcnow() - RECENT
    async with plane.db.session() as session:
        rows = (
            await session.execute(
                select(Deployment, Release, App, Org.name, Environment.name, CommitStatus)
                .join(Release, Release.id == Deployment.release_id)
                .join(App, App.id == Deployment.app_id)
                .join(Org, Org.id == App.org_id)
                .join(Environment, Environment.id == Deployment.environment_id)
                .outerjoin(CommitStatus, CommitStatus.deployment_id == Deployment.id)
                .where(Release.commit.is_not(None), Deployment.updated_at >= since)
                .order_by(Deployment.id)
            )
        ).all()
    posted = 0
    for deployment, release, app, org, environment, last in rows:
        wanted = gitea_state(deployment.state)
        if last is not None and (last.state == wanted or last.attempts >= MAX_ATTEMPTS):
            continue
        repository = repository_of(app.source, gitea.url)
        if repository is None:
            continue
        error: str | None = None
        try:
            await gitea.set_status(
                repository,
                release.commit or "",
                wanted,
                _description(deployment, environment),
                deployment_url(plane.settings.public_url, org, app.name, deployment.id),
            )
            posted += 1
        except SourceError as exc:
            error = str(exc)
            log.warning("commit status for deployment %s: %s", deployment.id, exc)
        async with plane.db.session() as session:
            row = await session.get(CommitStatus, deployment.id)
            if row is None:
                row = CommitStatus(deployment_id=deployment.id, state="", attempts=0)
                session.add(row)
            if error is None:
                row.state, row.attempts, row.error = wanted, 0, None
            else:
                row.attempts, row.error = row.attempts + 1, error
            row.updated_at = utcnow()
    return posted
