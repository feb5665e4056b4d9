"""Request-scoped dependencies: the control plane and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from fjord.api.settings import ApiSettings
from fjord.control import Actor, ControlPlane, UnauthenticatedError, system_actor
from fjord.control.tokens import authenticate

TOKEN_COOKIE = "fjord_token"  # noqa: S105 (a cookie's name)


def get_plane(request: Request) -> ControlPlane:
    plane: ControlPlane = request.app.state.plane
    return plane


def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


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
) -> Actor:
    token = bearer(request)
    if token is None:
        if settings.local_actor is not None:
            return system_actor(settings.local_actor)
        raise UnauthenticatedError("an API token is required (Authorization: Bearer …)")
    async with plane.db.session() as session:
        return await authenticate(session, token)


PlaneDep = Annotated[ControlPlane, Depends(get_plane)]
ActorDep = Annotated[Actor, Depends(get_actor)]
