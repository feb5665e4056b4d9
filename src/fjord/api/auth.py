"""Who is calling: an ``fjt_`` API token or an ID token of the configured OpenID provider.

Both end as an :class:`~fjord.control.Actor`; an ID token's roles come from its groups claim
through the platform config's ``access`` (:mod:`fjord.control.teams`), so a membership change
takes effect with the next token the provider issues (a refresh).
"""

from __future__ import annotations

from fjord.api.oidc import Identity, Provider, looks_like_jwt
from fjord.control import ControlPlane, UnauthenticatedError
from fjord.control.roles import Actor
from fjord.control.settings import ControlSettings
from fjord.control.teams import grants_from_groups
from fjord.control.tokens import authenticate


class Authenticator:
    def __init__(self, settings: ControlSettings) -> None:
        self.settings = settings
        self.provider = Provider(settings.oidc) if settings.oidc is not None else None

    def actor_for(self, identity: Identity) -> Actor:
        platform = self.settings.platform
        grants = grants_from_groups(identity.groups, platform.access, platform.environment_names)
        return Actor(
            name=identity.name,
            grants=grants.orgs,
            environment_grants=grants.environments,
            subject=identity.subject,
            provider=identity.issuer,
        )

    async def bearer(self, plane: ControlPlane, token: str) -> Actor:
        if looks_like_jwt(token):
            if self.provider is None:
                raise UnauthenticatedError(
                    "this server accepts no ID tokens (no OpenID provider configured)",
                    hint="use an fjt_ API token",
                )
            return self.actor_for(await self.provider.verify(token))
        async with plane.db.session() as session:
            return await authenticate(session, token)
