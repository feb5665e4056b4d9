"""Calling each cluster's Flux Receiver so a pull starts at once instead of at the interval.

The webhook path is Flux's own: ``/hook/`` + hex(sha256(token + name + namespace)); the request
is signed like the events Flux sends us (``X-Signature: sha256=<HMAC of the body>``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass

import httpx2

from fjord.control import flux


def webhook_path(
    token: str, name: str = flux.RECEIVER_NAME, namespace: str = flux.FLUX_NAMESPACE
) -> str:
    return "/hook/" + hashlib.sha256(f"{token}{name}{namespace}".encode()).hexdigest()


def signature(token: str, body: bytes) -> str:
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Target:
    cluster: str
    url: str
    token: str


@dataclass(frozen=True)
class Outcome:
    cluster: str
    ok: bool
    detail: str


async def _call(client: httpx2.AsyncClient, target: Target) -> Outcome:
    body = b'{"source":"fjord"}'
    try:
        response = await client.post(
            target.url.rstrip("/") + webhook_path(target.token),
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Signature": signature(target.token, body),
            },
        )
    except httpx2.HTTPError as exc:
        return Outcome(target.cluster, False, f"receiver unreachable: {exc}")
    if response.status_code >= 300:
        return Outcome(target.cluster, False, f"receiver answered {response.status_code}")
    return Outcome(target.cluster, True, "reconcile requested")


async def trigger(targets: list[Target], timeout: float = 10.0) -> list[Outcome]:
    """Best effort: a receiver that fails only means the cluster pulls at its interval."""
    if not targets:
        return []
    async with httpx2.AsyncClient(timeout=timeout) as client:
        return list(await asyncio.gather(*(_call(client, t) for t in targets)))
