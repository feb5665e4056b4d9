"""The audit log: every mutation, who did it, on what, with the details that matter."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fjord.control.models import AuditEntry
from fjord.control.roles import Actor


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
    session.add(AuditEntry(actor=actor.name, org=org, action=action, target=target, detail=detail))
