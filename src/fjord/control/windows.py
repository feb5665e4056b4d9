"""Delivery windows, as pure functions: is an environment open now, and if not, when it opens.

A window opens each time its cron expression fires (in its own time zone, so it follows
daylight saving there) and stays open ``durationSeconds``. Outside every window a deployment
waits in ``waiting_window`` with a ``not_before`` at the next opening (``deliverywindow.py``);
no process sleeps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from croniter import croniter

from fjord.spec.platform import DeliveryWindow


@dataclass(frozen=True)
class WindowStatus:
    open: bool
    closes_at: dt.datetime | None = None  # open: when the window it is in closes (UTC)
    opens_at: dt.datetime | None = None  # closed: when the next window opens (UTC)
    time_zone: str = "UTC"  # the zone of the window meant (for messages)


def _last_start(window: DeliveryWindow, local: dt.datetime) -> dt.datetime:
    # croniter's previous time is strictly before its base: a second later, so a window that
    # opens exactly now counts as open.
    base = local + dt.timedelta(seconds=1)
    found: dt.datetime = croniter(window.cron, base).get_prev(dt.datetime)
    return found


def _next_start(window: DeliveryWindow, local: dt.datetime) -> dt.datetime:
    found: dt.datetime = croniter(window.cron, local).get_next(dt.datetime)
    return found


def status(windows: Sequence[DeliveryWindow], now: dt.datetime) -> WindowStatus:
    """Open when ``now`` is inside any window (until the latest close among them); otherwise
    closed until the earliest next opening. No windows: always open."""
    if not windows:
        return WindowStatus(True)
    closes: list[tuple[dt.datetime, str]] = []
    opens: list[tuple[dt.datetime, str]] = []
    for window in windows:
        local = now.astimezone(ZoneInfo(window.time_zone))
        start = _last_start(window, local)
        end = start + dt.timedelta(seconds=window.duration_seconds)
        if start <= local < end:
            closes.append((end.astimezone(dt.UTC), window.time_zone))
        opens.append((_next_start(window, local).astimezone(dt.UTC), window.time_zone))
    if closes:
        at, zone = max(closes)
        return WindowStatus(True, closes_at=at, time_zone=zone)
    at, zone = min(opens)
    return WindowStatus(False, opens_at=at, time_zone=zone)


def describe_opening(environment: str, found: WindowStatus) -> str:
    """The message a waiting deployment shows."""
    assert found.opens_at is not None
    local = found.opens_at.astimezone(ZoneInfo(found.time_zone))
    return (
        f"outside {environment}'s delivery window; it opens at"
        f" {found.opens_at:%Y-%m-%d %H:%M:%S} UTC ({local:%H:%M:%S} {found.time_zone})"
    )
