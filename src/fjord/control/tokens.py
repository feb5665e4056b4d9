"""API tokens: random, shown once, stored as SHA-256 hashes.

A plain hash suffices (no bcrypt): the tokens are 256-bit random values, so there is nothing to
brute-force, and a fast hash keeps per-request authentication cheap.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fjord.control import audit
from fjord.control.errors import InvalidError, NotFoundError, UnauthenticatedError
from fjord.control.models import ApiToken, Grant, utcnow
from fjord.control.plane import ControlPlane
from fjord.control.roles import ALL_ORGS, Actor, Role
from fjord.control.views import CreatedToken, TokenView

PREFIX = "fjt_"
# last_used_at is written at most this often per token: a busy automation does not turn every
# request into a write.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _view(row: ApiToken, grants: list[Grant]) -> TokenView:
    return TokenView(
        id=row.id,
        name=row.name,
        grants={g.org: g.role for g in grants},
        created_by=row.created_by,
        created_at=row.created_at,
        revoked=row.revoked,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        environments=row.environments,
    )


async def create_token(
    plane: ControlPlane,
    actor: Actor,
    name: str,
    grants: Mapping[str, Role],
    *,
    expires_in: dt.timedelta | None = None,
    environments: Sequence[str] | None = None,
) -> CreatedToken:
    """A new token with ``grants`` (org or ``*`` → role), valid for ``expires_in`` (None:
    until revoked) and, with ``environments``, acting only there; platform-admins only."""
    for org in grants:
        actor.require(org if org != ALL_ORGS else ALL_ORGS, Role.platform_admin)
    if not grants:
        raise InvalidError("a token needs at least one grant (--role ORG=ROLE)")
    if expires_in is not None and expires_in <= dt.timedelta(0):
        raise InvalidError(f"expires_in must be positive, got {expires_in}")
    known = plane.settings.platform.environment_names
    unknown = sorted(set(environments or ()) - set(known))
    if unknown:
        raise InvalidError(
            f"environments: unknown {unknown}", hint=f"known environments: {', '.join(known)}"
        )
    token = PREFIX + secrets.token_urlsafe(32)
    async with plane.db.session() as session:
        row = ApiToken(
            name=name,
            token_hash=hash_token(token),
            created_by=actor.name,
            expires_at=utcnow() + expires_in if expires_in is not None else None,
            environments=sorted(set(environments)) if environments is not None else None,
        )
        session.add(row)
        await session.flush()
        rows = [Grant(token_id=row.id, org=org, role=role.value) for org, role in grants.items()]
        session.add_all(rows)
        audit.record(
            session,
            actor,
            "token.create",
            f"token/{row.id}",
            name=name,
            grants={o: r.value for o, r in grants.items()},
            expires_at=row.expires_at.isoformat() if row.expires_at else None,
            environments=row.environments,
        )
    return CreatedToken(token=token, info=_view(row, rows))


async def authenticate(session: AsyncSession, token: str) -> Actor:
    row = (
        await session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    ).one_or_none()
    if row is None or row.revoked:
        raise UnauthenticatedError("invalid or revoked API token")
    now = utcnow()
    if row.expires_at is not None and row.expires_at <= now:
        raise UnauthenticatedError(
            f"API token {row.name!r} expired at {row.expires_at.isoformat()}",
            hint="ask a platform-admin for a new one (fjord token create)",
        )
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
    grants = {
        g.org: Role(g.role)
        for g in (await session.scalars(select(Grant).where(Grant.token_id == row.id))).all()
    }
    subject = f"token/{row.id}"
    if row.environments is None:
        return Actor(name=f"token:{row.name}", grants=grants, subject=subject)
    # Scoped to environments: the grants hold only there (and as developer for org reads).
    scoped = {(org, env): role for org, role in grants.items() for env in row.environments}
    return Actor(name=f"token:{row.name}", environment_grants=scoped, subject=subject)


async def list_tokens(plane: ControlPlane, actor: Actor) -> list[TokenView]:
    actor.require(ALL_ORGS, Role.platform_admin)
    async with plane.db.session() as session:
        rows = (await session.scalars(select(ApiToken).order_by(ApiToken.id))).all()
        grants = (await session.scalars(select(Grant))).all()
    return [_view(r, [g for g in grants if g.token_id == r.id]) for r in rows]


async def revoke_token(plane: ControlPlane, actor: Actor, token_id: int) -> None:
    actor.require(ALL_ORGS, Role.platform_admin)
    async with plane.db.session() as session:
        row = await session.get(ApiToken, token_id)
        if row is None:
            raise NotFoundError(f"no token {token_id}")
        row.revoked = True
        audit.record(session, actor, "token.revoke", f"token/{token_id}")
