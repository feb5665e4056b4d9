"""Commit statuses in Gitea: each deployment of a commit, and each build of a pushed tag,
reports there.

``pending`` while it runs, ``success`` once every cluster is ready (a build: once the release is
pushed and signed), ``failure`` when it fails (or a newer deployment supersedes it), each with a
link to it in fjord's UI. Context ``fjord/deploy/<env>`` per environment and ``fjord/release``
for builds, so one commit shows each. Reported by the control plane's periodic sweep from the
recorded state, so any replica can report any job and a Gitea outage only delays the status
(retried next sweep).

Posted with the platform's Gitea token, not the org's read credential: Gitea has no scope for
commit statuses alone; posting one needs write access to the repository's code
(``write:repository``), which would let a leaked org credential push code. The org credential
stays read-only; the platform token already administers the repositories' webhooks.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import func, select

from fjord.control import states
from fjord.control.models import App, CommitStatus, Deployment, Environment, Org, Release, utcnow
from fjord.control.plane import ControlPlane
from fjord.control.webhooks import gitea_of
from fjord.sources import SourceError
from fjord.sources.gitea import (
    STATUS_CONTEXT,
    STATUS_FAILURE,
    STATUS_PENDING,
    STATUS_SUCCESS,
    repository_of,
)

BUILD_CONTEXT = "fjord/release"

log = logging.getLogger(__name__)

RECENT = dt.timedelta(days=1)  # older deployments are not reported (again)
MAX_ATTEMPTS = 10


def gitea_state(state: str) -> str:
    if state == states.READY:
        return STATUS_SUCCESS
    if state in (states.FAILED, states.SUPERSEDED):
        return STATUS_FAILURE
    return STATUS_PENDING


def deployment_url(public_url: str, org: str, app: str, deployment_id: int | None) -> str:
    """The deployment's row in the app's history; a build (``None``) links the app's page."""
    anchor = f"#deployment-{deployment_id}" if deployment_id is not None else ""
    return f"{public_url}/ui/apps/{org}/{app}{anchor}"


def context(environment: str | None) -> str:
    return f"{STATUS_CONTEXT}/{environment}" if environment else BUILD_CONTEXT


def _description(deployment: Deployment, environment: str | None) -> str:
    state = deployment.state.replace("_", " ")
    if environment is None:
        what = f"release of {deployment.source_ref}: " + ("built" if state == "ready" else state)
    else:
        what = f"{deployment.kind} to {environment}: {state}"
    return f"{what} ({deployment.reason})" if deployment.reason else what


async def report(plane: ControlPlane) -> int:
    """Post every status that changed since the last sweep; returns how many were posted."""
    gitea = gitea_of(plane)
    if gitea is None:
        return 0
    since = utcnow() - RECENT
    async with plane.db.session() as session:
        commit = func.coalesce(Release.commit, Deployment.source_revision)
        rows = (
            await session.execute(
                select(Deployment, commit, App, Org.name, Environment.name, CommitStatus)
                .outerjoin(Release, Release.id == Deployment.release_id)
                .join(App, App.id == Deployment.app_id)
                .join(Org, Org.id == App.org_id)
                .outerjoin(Environment, Environment.id == Deployment.environment_id)
                .outerjoin(CommitStatus, CommitStatus.deployment_id == Deployment.id)
                .where(commit.is_not(None), Deployment.updated_at >= since)
                .order_by(Deployment.id)
            )
        ).all()
    posted = 0
    for deployment, sha, app, org, environment, last in rows:
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
                sha,
                wanted,
                _description(deployment, environment),
                deployment_url(
                    plane.settings.public_url,
                    org,
                    app.name,
                    deployment.id if environment is not None else None,
                ),
                context=context(environment),
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
