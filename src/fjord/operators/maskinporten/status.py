"""The ``status`` a reconcile reports on a ``MaskinportenClient`` (pure, unit-tested).

Built as a :class:`~fjord.spec.infra.MaskinportenClientStatus` (the model the CRD's schema is
generated from) and sent as a merge patch of only the fields this pass decided, so a field set to
None is removed. The patch is None when the stored status already says exactly that, so an
unchanged object costs no write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fjord.operators.common.conditions import find, summarize, timestamp
from fjord.operators.common.errors import scrub
from fjord.spec.infra import READY, MaskinportenClientStatus

MAX_ACTIONS = 10


@dataclass(frozen=True)
class Verdict:
    """How the pass ended, for the conditions."""

    ready: bool
    reason: str
    message: str
    reconciling: bool = False
    stalled: bool = False
    degraded: bool = False


@dataclass(frozen=True)
class Failure:
    transient: bool
    reason: str
    message: str


@dataclass(frozen=True)
class Report:
    """What a successful pass found out about the client, its keys and the Secret."""

    client_id: str | None
    authority: str
    key_ids: tuple[str, ...]
    secret_name: str
    rotation_request: str | None
    next_rotation: float | None


def failed(body: Mapping[str, Any], failure: Failure, attempt: int) -> Verdict:
    """The verdict after ``failure``: Degraded (still Ready if it was) or Stalled."""
    status = body.get("status") or {}
    meta = body.get("metadata") or {}
    ready = find(status.get("conditions") or [], READY)
    # The Secret written for this generation keeps working while Digdir hiccups: stay Ready.
    still_ready = (
        ready is not None
        and ready.get("status") == "True"
        and status.get("observedGeneration") == meta.get("generation")
    )
    if failure.transient:
        message = f"{failure.message} (attempt {attempt}; retrying with backoff)"
        if still_ready:
            message = "the Secret still works; " + message
        return Verdict(still_ready, failure.reason, message, reconciling=True, degraded=True)
    return Verdict(False, failure.reason, failure.message, stalled=True)


def status_patch(
    body: Mapping[str, Any],
    verdict: Verdict,
    actions: Sequence[Mapping[str, Any]],
    report: Report | None,
    *,
    now: datetime,
) -> dict[str, Any] | None:
    """The ``status`` merge patch for this pass, or None when nothing would change.

    ``actions`` are this pass's commands as status entries, oldest first.
    """
    current = body.get("status") or {}
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    values: dict[str, Any] = {
        "observed_generation": generation,
        "conditions": summarize(
            current.get("conditions") or [],
            ready=verdict.ready,
            reason=verdict.reason,
            message=scrub(verdict.message),
            reconciling=verdict.reconciling,
            stalled=verdict.stalled,
            degraded=verdict.degraded,
            generation=generation,
            now=now,
        ),
    }
    if report is not None:
        values.update(
            client_id=report.client_id,
            authority=report.authority,
            key_ids=list(report.key_ids),
            secret_name=report.secret_name,
            rotation_request=report.rotation_request,
            next_rotation=_time(report.next_rotation),
        )
    if actions:
        history = [*reversed(actions), *(current.get("lastActions") or [])]
        values["last_actions"] = history[:MAX_ACTIONS]
    status = MaskinportenClientStatus.model_validate(values)
    patch = status.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return None if all(current.get(k) == v for k, v in patch.items()) else patch


def _time(ts: float | None) -> str | None:
    return timestamp(datetime.fromtimestamp(ts, UTC)) if ts is not None else None
