"""The audit log: every mutation, who did it, on what, with the details that matter."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fjord.control.models import AuditEntry
from fjord.control.plane import ControlPlane
from fjord.control.roles import ALL_ORGS, Actor, Role
from fjord.control.views import AuditView


def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    target: str,
    *,
    org: str | None = None,
    **detail: Any,
) -> None:
    """Add an entry in the caller's transaction, so the change and its record commit together."""
    session.add(
        AuditEntry(
            actor=actor.name,
            actor_subject=actor.subject or actor.name,
            actor_provider=actor.provider,
            org=org,
            action=action,
            target=target,
            detail=detail,
        )
    )


async def entries(
    plane: ControlPlane,
    actor: Actor,
    *,
    org: str | None = None,
    action: str | None = None,
    limit: int = 100,
    before: int | None = None,
) -> list[AuditView]:
    """Newest first. App-admins read their orgs' entries; platform-wide ones need platform-admin.

    Without ``org``: every entry the caller may read (its orgs', plus the org-less ones, such as
    token changes, for a platform admin).
    """
    query = select(AuditEntry)
    if org is not None:
        actor.require(org, Role.app_admin)
        query = query.where(AuditEntry.org == org)
    elif actor.can(ALL_ORGS, Role.platform_admin):
        pass  # everything, org-less entries included
    elif actor.can(ALL_ORGS, Role.app_admin):
        query = query.where(AuditEntry.org.is_not(None))
    else:
        orgs = [o for o in actor.grants if actor.can(o, Role.app_admin)]
        query = query.where(AuditEntry.org.in_(orgs))
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    async with plane.db.session() as session:
        rows = (await session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit))).all()
    return [
        AuditView(
            id=r.id,
            at=r.at,
            actor=r.actor,
            subject=r.actor_subject,
            provider=r.actor_provider,
            org=r.org,
            action=r.action,
            target=r.target,
            detail=r.detail,
        )
        for r in rows
    ]
