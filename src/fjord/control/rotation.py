"""Credentials rotation as a change of the dynamic config: the pure part of ``fjord rotate``.

Raising ``credentialsRotation`` of one environment makes the next release mount new PostgreSQL
and Redis Secrets; the old ones stay while a ReplicaSet still uses them.
"""

from __future__ import annotations

from typing import Any

ROTATION = "credentialsRotation"  # the app spec field a rotation raises


def raised(values: dict[str, Any], environment: str) -> tuple[dict[str, Any], int]:
    """``values`` with the environment's rotation counter one higher; and that counter."""
    result = dict(values)
    overlays = dict(result.get("environments") or {})
    overlay = dict(overlays.get(environment) or {})
    common = result.get("common") or {}
    counter = int(overlay.get(ROTATION, common.get(ROTATION, 0))) + 1
    overlay[ROTATION] = counter
    overlays[environment] = overlay
    result["environments"] = overlays
    return result, counter
