"""Promotion verification: a release moves on only after it has been healthy in the environment
before for the target's ``promotionSoakSeconds``; the API (and so the CLI and UI) say how long
remains, and a promotion asked too early is refused with the same numbers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from test_control_support import (
    ADMIN,
    CLUSTER,
    demo_platform,
    event_body,
    opened,
    report,
    settings,
    settle,
    with_app,
)

from fjord.control import ConflictError, deploys, promotions
from fjord.control.models import utcnow
from fjord.spec.platform import Environment

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_remaining_seconds_round_up_and_stop_at_zero() -> None:
    assert promotions.remaining_seconds(T0, 60, T0) == 60
    assert promotions.remaining_seconds(T0, 60, T0 + dt.timedelta(seconds=59.5)) == 1
    assert promotions.remaining_seconds(T0, 60, T0 + dt.timedelta(seconds=60)) == 0
    assert promotions.remaining_seconds(T0, 0, T0) == 0


def soaking(tmp_path: Path, seconds: int):  # type: ignore[no-untyped-def]
    base = demo_platform()
    platform = base.model_copy(
        update={
            "environments": [
                Environment(name="tt02", domain="tt02.fjord.localhost"),
                Environment(name="production", promotion_soak_seconds=seconds),
            ]
        }
    )
    return settings(tmp_path, platform=platform)


async def test_promotion_waits_for_the_soak_and_says_how_long_remains(tmp_path: Path) -> None:
    async with opened(soaking(tmp_path, 3600)) as plane:
        tokens = await with_app(plane, tmp_path)
        early = await promotions.check(plane, ADMIN, "ttd/skjema", "production")
        assert (early.promotable, early.reason) == (False, "nothing is ready in tt02 to promote")

        deployment = await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
        await report(plane, tokens[CLUSTER], event_body(revision=f"tt02@{deployment.digest}"))
        first = await promotions.check(plane, ADMIN, "ttd/skjema", "production")
        assert not first.promotable
        assert first.digest == deployment.digest
        assert first.healthy_since is not None
        expected = promotions.remaining_seconds(first.healthy_since, 3600, utcnow())
        assert expected <= first.remaining_seconds <= 3600
        assert first.reason is not None
        assert "production asks for 3600s" in first.reason
        assert f"{first.remaining_seconds}s remain" in first.reason
        with pytest.raises(ConflictError) as refused:
            await deploys.promote(plane, ADMIN, "ttd/skjema", to="production")
        assert "may not be promoted to production yet" in str(refused.value)
        assert 0 < refused.value.details["remaining_seconds"] <= first.remaining_seconds

    # The same history under a soak it has already served: offered, and it goes.
    async with opened(soaking(tmp_path, 0)) as plane:
        view = await promotions.check(plane, ADMIN, "ttd/skjema", "production")
        assert (view.promotable, view.remaining_seconds, view.reason) == (True, 0, None)
        promoted = await settle(plane, deploys.promote(plane, ADMIN, "ttd/skjema", to="production"))
        assert promoted.digest == deployment.digest


async def test_a_release_failing_now_is_not_promotable(tmp_path: Path) -> None:
    async with opened(soaking(tmp_path, 0)) as plane:
        tokens = await with_app(plane, tmp_path)
        deployment = await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
        await report(
            plane,
            tokens[CLUSTER],
            event_body(revision=f"tt02@{deployment.digest}", timestamp="2026-01-01T00:00:00Z"),
        )
        assert (await promotions.check(plane, ADMIN, "ttd/skjema", "production")).promotable
        await report(
            plane,
            tokens[CLUSTER],
            event_body(
                severity="error",
                reason="HealthCheckFailed",
                message="Deployment/ttd-skjema/skjema not ready",
                revision=f"tt02@{deployment.digest}",
                timestamp="2026-01-01T00:01:00Z",
            ),
        )
        view = await promotions.check(plane, ADMIN, "ttd/skjema", "production")
        assert not view.promotable
        assert view.reason == (
            "not healthy in tt02 now: ttd.tt02.tt02-1: Deployment/ttd-skjema/skjema not ready"
        )
