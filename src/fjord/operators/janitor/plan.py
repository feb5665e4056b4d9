"""Which managed Secrets of one namespace to delete, and why (pure, unit-tested).

Delete: managed Secrets past their ``expires-at`` annotation (whether used or not: expiry means
the credentials stop working), and unused Secrets that are not protected. Never: a Secret already
being deleted, or one younger than ``grace`` seconds (the reconcile that created it writes the
AppCredentials status, which names it, right after). The commands come out sorted by name, so a
sweep acts in a stable order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from fjord.operators.credentials import naming
from fjord.operators.janitor.usage import used_secrets

# Event reasons on the deleted Secret.
EXPIRED: Final = "Expired"
UNUSED: Final = "Unused"


@dataclass(frozen=True)
class DeleteSecret:
    name: str
    reason: str
    message: str


def _expired(notes: Mapping[str, str], now: datetime) -> bool:
    value = notes.get(naming.EXPIRES_AT)
    if not value:
        return False
    try:
        return datetime.fromisoformat(value) <= now
    except ValueError:
        return False  # unparsable: keep (aivenator does the same)


def _age(meta: Mapping[str, Any], now: datetime) -> float:
    created = meta.get("creationTimestamp")
    if not created:
        return float("inf")
    return (now - datetime.fromisoformat(str(created).replace("Z", "+00:00"))).total_seconds()


def _decide(
    meta: Mapping[str, Any], used: set[str], now: datetime, grace: float
) -> DeleteSecret | None:
    if meta.get("deletionTimestamp"):
        return None  # its finalizer is already at work
    name = str(meta["name"])
    notes = meta.get("annotations") or {}
    if _expired(notes, now):
        return DeleteSecret(name, EXPIRED, f"deleted: expired at {notes[naming.EXPIRES_AT]}")
    if _age(meta, now) < grace:
        return None  # just created: its AppCredentials' status may not name it yet
    if name in used or notes.get(naming.PROTECTED) == "true":
        return None
    return DeleteSecret(name, UNUSED, "deleted: nothing uses it")


def plan(
    secrets: Iterable[Mapping[str, Any]],
    users: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    grace: float = 0.0,
) -> list[DeleteSecret]:
    """The deletions for the managed ``secrets`` of one namespace, given the ``users`` there."""
    used = used_secrets(users)
    found = (_decide(s.get("metadata") or {}, used, now, grace) for s in secrets)
    return sorted((d for d in found if d is not None), key=lambda d: d.name)


def to_delete(
    secrets: Iterable[Mapping[str, Any]],
    users: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    grace: float = 0.0,
) -> list[str]:
    """Just the names :func:`plan` would delete."""
    return [d.name for d in plan(secrets, users, now=now, grace=grace)]
