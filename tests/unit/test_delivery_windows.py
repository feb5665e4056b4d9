"""Delivery windows: the pure arithmetic (``control/windows.py``) branch by branch, the config's
errors, and on SQLite a deploy that waits (visibly) until its window opens, and a
platform-admin's override that lets another through, audited."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from test_control_support import ADMIN, demo_platform, opened, settings

import gitea_support
from fjord.control import (
    ControlPlane,
    ForbiddenError,
    apps,
    audit,
    clusters,
    credentials,
    deploys,
    queries,
    states,
    system_actor,
    windowgate,
    windows,
)
from fjord.control.roles import Actor, Role
from fjord.control.worker import drain
from fjord.spec.platform import DeliveryWindow, Environment

MONDAY_9 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)  # a Monday
WEEKDAYS_9_TO_10 = DeliveryWindow(cron="0 9 * * 1-5", duration_seconds=3600)


def test_no_windows_means_always_open() -> None:
    assert windows.status([], MONDAY_9) == windows.WindowStatus(True)


def test_inside_a_window_it_is_open_until_it_closes_and_its_first_second_counts() -> None:
    found = windows.status([WEEKDAYS_9_TO_10], MONDAY_9)
    assert found == windows.WindowStatus(True, closes_at=MONDAY_9 + dt.timedelta(hours=1))
    later = windows.status([WEEKDAYS_9_TO_10], MONDAY_9 + dt.timedelta(minutes=59))
    assert later.open


def test_outside_every_window_it_says_when_the_next_opens() -> None:
    closed = windows.status([WEEKDAYS_9_TO_10], MONDAY_9 + dt.timedelta(hours=1))
    assert closed == windows.WindowStatus(False, opens_at=MONDAY_9 + dt.timedelta(days=1))
    friday_night = dt.datetime(2026, 1, 9, 22, 0, tzinfo=dt.UTC)
    weekend = windows.status([WEEKDAYS_9_TO_10], friday_night)
    assert weekend.opens_at == dt.datetime(2026, 1, 12, 9, 0, tzinfo=dt.UTC)
    message = windows.describe_opening("production", weekend)
    assert message == (
        "outside production's delivery window; it opens at 2026-01-12 09:00:00 UTC (09:00:00 UTC)"
    )


def test_a_window_follows_its_own_time_zone_and_the_earliest_opening_wins() -> None:
    oslo = DeliveryWindow(cron="0 9 * * *", time_zone="Europe/Oslo", duration_seconds=600)
    # 09:00 in Oslo is 08:00 UTC in winter, 07:00 UTC in summer.
    assert windows.status([oslo], dt.datetime(2026, 1, 5, 8, 5, tzinfo=dt.UTC)).open
    summer = windows.status([oslo], dt.datetime(2026, 7, 6, 8, 5, tzinfo=dt.UTC))
    assert summer.opens_at == dt.datetime(2026, 7, 7, 7, 0, tzinfo=dt.UTC)
    evening = DeliveryWindow(cron="0 18 * * *", duration_seconds=600)
    both = windows.status([oslo, evening], dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC))
    assert both.opens_at == dt.datetime(2026, 1, 5, 18, 0, tzinfo=dt.UTC)
    assert both.time_zone == "UTC"
    overlapping = DeliveryWindow(cron="0 9 * * 1-5", duration_seconds=7200)
    assert windows.status([WEEKDAYS_9_TO_10, overlapping], MONDAY_9).closes_at == (
        MONDAY_9 + dt.timedelta(hours=2)
    )


def test_the_config_names_a_bad_cron_or_time_zone() -> None:
    with pytest.raises(ValidationError, match="'every day' is not a cron expression"):
        DeliveryWindow(cron="every day", duration_seconds=600)
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        DeliveryWindow(cron="0 9 * * *", time_zone="Mars/Olympus", duration_seconds=600)
    with pytest.raises(ValidationError, match="greater than or equal to 60"):
        DeliveryWindow(cron="0 9 * * *", duration_seconds=5)


# ---- on SQLite -------------------------------------------------------------------------------


def opening_soon(seconds: int) -> tuple[DeliveryWindow, dt.datetime]:
    """A window whose next opening is ``seconds`` from now (cron with seconds, UTC)."""
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).replace(microsecond=0)
    cron = f"{at.minute} {at.hour} {at.day} {at.month} * {at.second}"
    return DeliveryWindow(cron=cron, duration_seconds=600), at


def windowed_settings(tmp_path: Path, window: DeliveryWindow):  # type: ignore[no-untyped-def]
    base = demo_platform()
    platform = base.model_copy(
        update={
            "environments": [
                Environment(name="tt02", domain="tt02.fjord.localhost", delivery_windows=[window]),
                Environment(name="production"),
            ]
        }
    )
    return settings(tmp_path, platform=platform, poll_seconds=0.05)


async def registered(plane: ControlPlane) -> None:
    gitea = gitea_support.shared()
    await credentials.set_credential(plane, ADMIN, "ttd", gitea.tokens["ttd"])
    repo = gitea.push_app("ttd", "platform-app", name="skjema")
    await apps.create_app(plane, ADMIN, "ttd/skjema", repo.clone_url)
    await clusters.bootstrap(plane, ADMIN, "ttd", "tt02", "tt02-1")


async def settled(plane: ControlPlane, deployment_id: int, wanted: str) -> object:
    deadline = time.monotonic() + 120
    while True:
        await drain(plane)
        view = await queries.get_deployment(plane, ADMIN, deployment_id)
        if view.state == wanted:
            return view
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.05)


async def test_a_deploy_waits_visibly_until_its_window_opens(tmp_path: Path) -> None:
    # The release is built first (no windows yet), so the wait below is the window's alone.
    async with opened(settings(tmp_path, poll_seconds=0.05)) as plane:
        await registered(plane)
        built = await deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02")
        release_id = (await settled(plane, built.id, states.PROGRESSING)).release_id  # type: ignore[attr-defined]
    window, opens = opening_soon(20)
    async with opened(windowed_settings(tmp_path, window)) as plane:
        requested = await deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02", release_id=release_id)
        await drain(plane)
        waiting = await queries.get_deployment(plane, ADMIN, requested.id)
        assert waiting.state == states.WAITING_WINDOW
        assert waiting.reason is not None
        assert waiting.reason.startswith(
            f"outside tt02's delivery window; it opens at {opens:%Y-%m-%d %H:%M:%S} UTC"
        )
        assert waiting.not_before == opens
        assert (waiting.steps[-1].name, waiting.steps[-1].finished_at) == ("window", None)
        done = await settled(plane, requested.id, states.PROGRESSING)
        gate = next(s for s in done.steps if s.name == "window")  # type: ignore[attr-defined]
        assert gate.finished_at is not None
        assert gate.finished_at >= opens  # it went only once the window was open
        assert done.reason is None  # type: ignore[attr-defined]


async def test_a_platform_admin_overrides_a_closed_window_audited(tmp_path: Path) -> None:
    window, _ = opening_soon(3 * 3600)
    async with opened(windowed_settings(tmp_path, window)) as plane:
        await registered(plane)
        requested = await deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02")
        waiting = await settled(plane, requested.id, states.WAITING_WINDOW)
        reason = waiting.reason  # type: ignore[attr-defined]
        assert reason.startswith("outside tt02's delivery window; it opens at")
        shown = await windowgate.environment_window(plane, ADMIN, "tt02")
        assert (shown.open, shown.opens_at) == (False, waiting.not_before)  # type: ignore[attr-defined]

        lead = Actor("token:lead", {"ttd": Role.app_admin})
        with pytest.raises(ForbiddenError, match="needs the platform-admin role"):
            await windowgate.override(plane, lead, requested.id)
        platform_admin = system_actor("ops")
        await windowgate.override(plane, platform_admin, requested.id)
        done = await settled(plane, requested.id, states.PROGRESSING)
        assert done.window_override_by == "ops"  # type: ignore[attr-defined]
        entries = await audit.entries(plane, ADMIN, org="ttd")
        override = next(e for e in entries if e.action == "deployment.window_override")
        assert (override.actor, override.detail["deployment"]) == ("ops", requested.id)
