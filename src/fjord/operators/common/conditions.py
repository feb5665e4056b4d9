"""Status conditions as pure functions (Kubernetes API conventions).

A condition's ``lastTransitionTime`` changes only when its ``status`` changes, so re-reporting the
same state produces an identical list and the caller can skip the status write entirely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fjord.spec.infra import AS_EXPECTED, DEGRADED, READY, RECONCILING, STALLED

__all__ = [
    "DEGRADED",
    "READY",
    "RECONCILING",
    "STALLED",
    "find",
    "set_condition",
    "summarize",
    "timestamp",
]

Condition = dict[str, Any]


def timestamp(now: datetime) -> str:
    """RFC 3339 in UTC with second precision, as the API server writes it."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find(conditions: Sequence[Mapping[str, Any]], type_: str) -> Condition | None:
    for cond in conditions:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """A copy of ``conditions`` with ``type_`` set; other conditions keep their order."""
    value = "True" if status else "False"
    previous = find(conditions, type_)
    changed = previous is None or previous.get("status") != value
    updated: Condition = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": (
            timestamp(now) if changed or previous is None else previous.get("lastTransitionTime")
        ),
        "observedGeneration": generation,
    }
    result = [dict(c) for c in conditions if c.get("type") != type_]
    index = next((i for i, c in enumerate(conditions) if c.get("type") == type_), len(result))
    result.insert(index, updated)
    return result


def summarize(
    conditions: Sequence[Mapping[str, Any]],
    *,
    ready: bool,
    reason: str,
    message: str,
    reconciling: bool = False,
    stalled: bool = False,
    degraded: bool = False,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Set Ready/Reconciling/Stalled/Degraded together from one outcome of a reconcile.

    ``reason``/``message`` go on Ready and on whichever abnormal condition is true, so
    ``kubectl get`` shows the actionable text in the Ready column's Reason.
    """
    result = set_condition(
        conditions, READY, ready, reason, message, generation=generation, now=now
    )
    for type_, flag in ((RECONCILING, reconciling), (STALLED, stalled), (DEGRADED, degraded)):
        text, why = (message, reason) if flag else ("", AS_EXPECTED)
        result = set_condition(result, type_, flag, why, text, generation=generation, now=now)
    return result
