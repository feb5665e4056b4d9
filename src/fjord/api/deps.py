"""Request-scoped dependencies: the control plane and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from fjord.api.auth import Authenticator
from fjord.api.settings import ApiSettings
from fjord.control import Actor, ControlPlane, UnauthenticatedError, system_actor


def get_plane(request: Request) -> ControlPlane:
    plane: ControlPlane = request.app.state.plane
    return plane


def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


def get_authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def get_actor(
    request: Request,
    plane: Annotated[ControlPlane, Depends(get_plane)],
    settings: Annotated[ApiSettings, Depends(get_settings)],
    authenticator: Annotated[Authenticator, Depends(get_authenticator)],
) -> Actor:
    token = bearer(request)
    if token is None:
        if settings.local_actor is not None:
            return system_actor(settings.local_actor)
        raise UnauthenticatedError(
            "a token is required (Authorization: Bearer …): an fjt_ API token, or an ID token"
            " from fjord login"
        )
    return await authenticator.bearer(plane, token)


PlaneDep = Annotated[ControlPlane, Depends(get_plane)]
ActorDep = Annotated[Actor, Depends(get_actor)]
