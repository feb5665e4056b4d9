"""Kubernetes Events about the objects an operator manages (``events.k8s.io/v1``).

Posting an Event is best effort: a failure is logged and never fails the reconcile. Messages are
scrubbed of credential-looking text.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from fjord.kube import Kube
from fjord.operators.common.errors import scrub

NORMAL = "Normal"
WARNING = "Warning"

log = structlog.get_logger("fjord.operators.events")


def event_manifest(
    obj: Mapping[str, Any],
    type_: str,
    reason: str,
    message: str,
    *,
    controller: str,
    action: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The Event about ``obj`` (pure; ``now`` defaults to the current time)."""
    meta = obj.get("metadata", {})
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta.get('name', 'object')[:200]}.{uuid.uuid4().hex[:12]}",
            "namespace": meta.get("namespace") or "default",
        },
        "eventTime": when,
        "type": type_,
        "reason": reason,
        "action": action,
        "note": scrub(message)[:1024],
        "reportingController": controller,
        "reportingInstance": controller,
        "regarding": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
    }


async def post(
    kube: Kube,
    obj: Mapping[str, Any],
    type_: str,
    reason: str,
    message: str,
    *,
    controller: str,
    action: str = "Reconcile",
) -> None:
    """Post an Event; failures are logged, not raised."""
    try:
        await kube.create(
            event_manifest(obj, type_, reason, message, controller=controller, action=action)
        )
    except Exception as exc:  # an Event must never break a reconcile
        log.warning("event_failed", reason=reason, error=scrub(str(exc)))
