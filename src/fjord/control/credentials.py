"""Per-org read credentials for the orgs' Git repositories (a Gitea token each).

Stored encrypted with the same key file as the clusters' HMAC tokens (see ``secrets``); never
returned by the API, only replaced. The mirror hands the token to git through the environment.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from fjord.control import audit, catalog
from fjord.control.errors import InvalidError
from fjord.control.models import OrgCredential, utcnow
from fjord.control.plane import ControlPlane
from fjord.control.roles import Actor, Role


async def set_credential(plane: ControlPlane, actor: Actor, org_name: str, token: str) -> None:
    """Replace ``org``'s read token; an app-admin of the org (or a platform admin) may."""
    actor.require(org_name, Role.app_admin)
    token = token.strip()
    if not token or any(c.isspace() for c in token):
        raise InvalidError("the token is empty or contains whitespace")
    async with plane.db.session() as session:
        org = await catalog.org(session, org_name)
        row = await session.get(OrgCredential, org.id)
        cipher = plane.cipher.encrypt(token)
        if row is None:
            session.add(OrgCredential(org_id=org.id, token_cipher=cipher, updated_by=actor.name))
        else:
            row.token_cipher, row.updated_by, row.updated_at = cipher, actor.name, utcnow()
        audit.record(session, actor, "org.credential.set", org_name, org=org_name)


async def org_token(session: AsyncSession, plane: ControlPlane, org_id: int) -> str | None:
    """The org's read token in clear, or None when none was set (public repositories)."""
    row = await session.get(OrgCredential, org_id)
    return plane.cipher.decrypt(row.token_cipher) if row is not None else None
