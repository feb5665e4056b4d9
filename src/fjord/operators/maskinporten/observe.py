"""Observe: the CR, our clients in Digdir and the app Secret, turned into an ``Observed``.

Finding our client costs one GET when its id is known (status or Secret). Only when no id is
known, or on deletion, do we list every client and match the deterministic identity; that list
is shared between reconciles (``ClientListing``), because 500 new CRs must not cost 500 lists.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from fjord.maskinporten.admin import SelfServiceClient
from fjord.maskinporten.errors import AdminNotFoundError, SettingsError
from fjord.maskinporten.registration import RegisteredClient
from fjord.maskinporten.secret_format import ENV_KEYS, SETTINGS_JSON, MaskinportenSettings
from fjord.operators.common.kubeapi import CountingKube
from fjord.operators.maskinporten.model import (
    ROTATE_ANNOTATION,
    DigdirClient,
    RegisteredKey,
    Resource,
    SecretState,
)
from fjord.spec.infra import MaskinportenClientSpec


def resource_from_body(body: Mapping[str, Any]) -> Resource:
    """The CR as the plan needs it; the spec is validated with the shared pydantic model."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    spec = MaskinportenClientSpec.model_validate(body.get("spec") or {})
    annotations = meta.get("annotations") or {}
    return Resource(
        namespace=str(meta["namespace"]),
        name=str(meta["name"]),
        uid=str(meta["uid"]),
        generation=int(meta.get("generation") or 0),
        scopes=tuple(spec.scopes),
        secret_name=spec.secret_name,
        deleting=bool(meta.get("deletionTimestamp")),
        rotate_request=annotations.get(ROTATE_ANNOTATION),
        status_client_id=status.get("clientId"),
        status_rotation_request=status.get("rotationRequest"),
        status_secret_name=status.get("secretName"),
    )


# -- Secret --------------------------------------------------------------------------------------


def decode_secret_data(secret: Mapping[str, Any]) -> dict[str, str]:
    data: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            data[key] = base64.b64decode(value).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
    return data


def secret_state(secret: Mapping[str, Any] | None, name: str, owner_uid: str) -> SecretState:
    if secret is None:
        return SecretState(name=name)
    controller = next(
        (r for r in secret["metadata"].get("ownerReferences") or [] if r.get("controller")), None
    )
    owned = controller is not None and controller.get("uid") == owner_uid
    foreign = (
        f"{controller.get('kind')}/{controller.get('name')}"
        if controller is not None and not owned
        else None
    )
    data = decode_secret_data(secret)
    ours = {*ENV_KEYS, SETTINGS_JSON}
    try:
        settings: MaskinportenSettings | None = MaskinportenSettings.from_secret_data(
            {k: v for k, v in data.items() if k in ours}
        )
    except SettingsError:
        settings = None  # wiped or hand-edited: treated as "no key", the plan writes a new one
    return SecretState(
        name=name,
        exists=True,
        owned=owned,
        foreign_owner=foreign,
        settings=settings,
        has_our_keys=any(k in ours for k in data),
    )


async def observe_secret(
    kube: CountingKube, namespace: str, name: str, owner_uid: str
) -> SecretState:
    return secret_state(await kube.get("v1", "Secret", name, namespace), name, owner_uid)


# -- Digdir --------------------------------------------------------------------------------------


class ClientListing:
    """One shared ``GET /clients``, reused by reconciles that can accept it.

    A reconcile passes ``newer_than``: the time of its own last create attempt. A listing that
    started after that instant includes any client that attempt made, so reusing it can never
    hide our own client (which would lead to a duplicate). Other CRs' clients do not matter to
    it. A fresh process starts with no listing, so a crash never leaves a stale one behind.
    """

    def __init__(self, api: SelfServiceClient, clock: Callable[[], float] = time.monotonic):
        self._api = api
        self._clock = clock
        self._lock = asyncio.Lock()
        self._started = -math.inf
        self._clients: list[RegisteredClient] = []
        self.fetches = 0

    def now(self) -> float:
        return self._clock()

    async def clients(self, newer_than: float) -> list[RegisteredClient]:
        async with self._lock:  # single flight: waiters reuse the listing just fetched
            if self._started <= newer_than:
                started = self._clock()
                self._clients = await self._api.list_clients()
                self._started = started
                self.fetches += 1
            return self._clients


def is_ours(client: RegisteredClient, identity: str) -> bool:
    return client.description == identity or client.client_name == identity


async def observe_clients(
    api: SelfServiceClient,
    listing: ClientListing,
    identity: str,
    known_ids: list[str],
    *,
    list_anyway: bool,
    newer_than: float,
) -> tuple[DigdirClient, ...]:
    """Our clients: those with a known id (if they carry our identity), else by identity."""
    found: dict[str, RegisteredClient] = {}
    for client_id in dict.fromkeys(known_ids):
        try:
            client = await api.get_client(client_id)
        except AdminNotFoundError:
            continue
        # A stored id pointing at someone else's client (a copied Secret, say) is not adopted.
        if is_ours(client, identity):
            found[client.client_id] = client
    if list_anyway or not found:
        for client in await listing.clients(newer_than):
            if is_ours(client, identity):
                found.setdefault(client.client_id, client)
    result = []
    for client in found.values():
        try:
            jwks = await api.get_jwks(client.client_id)
        except AdminNotFoundError:
            continue  # deleted since the listing
        result.append(
            DigdirClient(
                client_id=client.client_id,
                registration=client,
                keys=tuple(_key(k) for k in jwks.get("keys") or []),
                created=client.created,
            )
        )
    return tuple(result)


def _key(raw: Mapping[str, Any]) -> RegisteredKey:
    expires = raw.get("exp")
    return RegisteredKey(
        kid=str(raw.get("kid")),
        created=_timestamp(raw.get("created")),
        expires=float(expires) if isinstance(expires, int | float) else None,
    )


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
