"""Delivery outcomes (``control/outcomes.py``): the pure computation branch by branch, then real
deployments on SQLite (ready, failed by Flux, ready again) read through the HTTP API with the
one API client and scraped from ``/metrics``."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from pathlib import Path

import httpx2
import pytest
from test_api_metrics import labels, scrape
from test_control_support import (
    ADMIN,
    CLUSTER,
    UNUSED_REPO,
    demo_platform,
    event_body,
    report,
    settings,
    settle,
    with_app,
)
from typer.testing import CliRunner

from fjord.api.client import ApiError, FjordClient
from fjord.cli.client import EXIT_NOT_FOUND
from fjord.cli.main import app as cli
from fjord.control import ControlPlane, Role, apps, catalog, deploys, outcomes
from fjord.control.models import Deployment, utcnow
from fjord.control.tokens import create_token
from fjord.control.views import duration

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "fjord-outcomes.json"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
Key = tuple[str, str, str]
KEY: Key = ("ttd", "skjema", "tt02")


def at(seconds: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def group(state: str, count: int, seconds: float, key: Key = KEY) -> outcomes.Group:
    return outcomes.Group(key, state, count, seconds)


def failure(finished: int, restored: int | None, key: Key = KEY) -> outcomes.Failure:
    return outcomes.Failure(key, at(finished), None if restored is None else at(restored))


def test_lead_time_sums_the_ready_changes_only() -> None:
    found = outcomes.outcomes([group("ready", 2, 40.0), group("failed", 1, 500.0)], [])
    assert (found.lead_seconds[KEY], found.lead_count[KEY]) == (40.0, 2)
    assert (found.finished[(KEY, "ready")], found.finished[(KEY, "failed")]) == (2, 1)
    assert found.restore_count[KEY] == 0


def test_failures_before_the_same_ready_change_are_one_outage_from_the_first() -> None:
    # failed at 30, rolled back at 50 (still broken), ready again at 90: one restore of 60 s
    found = outcomes.outcomes([], [failure(50, 90), failure(30, 90)])
    assert (found.restore_seconds[KEY], found.restore_count[KEY]) == (60.0, 1)


def test_outages_ended_by_different_ready_changes_are_counted_apart() -> None:
    found = outcomes.outcomes([], [failure(10, 20), failure(30, 50)])
    assert (found.restore_seconds[KEY], found.restore_count[KEY]) == (30.0, 2)


def test_a_failure_not_yet_restored_has_no_time_to_restore() -> None:
    found = outcomes.outcomes([group("aborted", 1, 0.0)], [failure(20, None)])
    assert found.finished[(KEY, "aborted")] == 1
    assert found.restore_count[KEY] == 0
    assert KEY not in found.restore_seconds


def test_apps_and_environments_are_kept_apart() -> None:
    production = ("ttd", "skjema", "production")
    found = outcomes.outcomes(
        [group("ready", 1, 50.0, production)], [failure(10, 60), failure(30, 60, production)]
    )
    assert (found.restore_seconds[KEY], found.restore_seconds[production]) == (50.0, 30.0)
    assert (found.lead_count[KEY], found.lead_count[production]) == (0, 1)


def test_rolling_up_adds_sums_and_counts_measured_per_app() -> None:
    other_app = ("ttd", "skjema2", "tt02")
    found = outcomes.outcomes(
        [group("ready", 1, 10.0), group("failed", 1, 10.0), group("ready", 1, 20.0, other_app)],
        [failure(10, 40), failure(15, 40, other_app)],
    )
    by_org_env = outcomes.rolled_up(found, lambda k: (k[0], k[2]))
    org_env = ("ttd", "tt02")
    assert by_org_env.finished[(org_env, "ready")] == 2
    assert by_org_env.finished[(org_env, "failed")] == 1
    assert (by_org_env.lead_seconds[org_env], by_org_env.lead_count[org_env]) == (30.0, 2)
    assert (by_org_env.restore_seconds[org_env], by_org_env.restore_count[org_env]) == (55.0, 2)


def test_the_summary_gives_rates_and_means_and_lists_every_environment() -> None:
    found = outcomes.outcomes(
        [group("ready", 2, 60.0), group("failed", 2, 20.0)], [failure(50, 110), failure(70, 110)]
    )
    view = outcomes.summary(
        outcomes.rolled_up(found, lambda k: k[2]),
        "ttd/skjema",
        ["tt02", "production"],
        window=dt.timedelta(days=2),
    )
    assert view.window_days == 2
    tt02, production = view.environments
    assert (tt02.ready, tt02.failed, tt02.deployments_per_day) == (2, 2, 1.0)
    assert tt02.change_failure_rate == 0.5
    assert tt02.lead_time_seconds == 30.0
    assert (tt02.time_to_restore_seconds, tt02.restores) == (60.0, 1)
    assert production.environment == "production"
    assert (production.ready, production.deployments_per_day, production.restores) == (0, 0, 0)
    assert production.change_failure_rate is None
    assert production.lead_time_seconds is None
    assert production.time_to_restore_seconds is None


def test_durations_read_as_hours_minutes_seconds() -> None:
    assert [duration(s) for s in (None, 0.2, 59.6, 3723)] == ["–", "0s", "1m", "1h 2m 3s"]


async def test_the_outcomes_through_the_api_and_on_metrics(
    plane: ControlPlane, http: httpx2.AsyncClient, tmp_path: Path
) -> None:
    tokens = await with_app(plane, tmp_path)
    first = await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
    await report(plane, tokens[CLUSTER], event_body(revision=f"tt02@{first.digest}"))
    await apps.set_config(plane, ADMIN, "ttd/skjema", {"common": {"env": {"V": "2"}}}, "two", 0)
    second = await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
    await report(
        plane,
        tokens[CLUSTER],
        event_body(
            severity="error",
            reason="HealthCheckFailed",
            message="Deployment/ttd-skjema/skjema not ready",
            revision=f"tt02@{second.digest}",
        ),
    )
    await apps.set_config(plane, ADMIN, "ttd/skjema", {"common": {"env": {"V": "3"}}}, "fix", 1)
    third = await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
    await report(plane, tokens[CLUSTER], event_body(revision=f"tt02@{third.digest}"))

    reader = await create_token(plane, ADMIN, "viewer", {"ttd": Role.reader})
    http.headers["Authorization"] = f"Bearer {reader.token}"
    async with FjordClient(http, owns_http=False) as api:
        view = await api.outcomes("ttd/skjema")
        with pytest.raises(ApiError) as unknown:
            await api.outcomes("ttd/nope")
    assert unknown.value.status == 404
    assert view.app == "ttd/skjema"
    tt02 = next(e for e in view.environments if e.environment == "tt02")
    assert (tt02.ready, tt02.failed, tt02.restores) == (2, 1, 1)
    assert tt02.change_failure_rate == pytest.approx(1 / 3)
    assert tt02.lead_time_seconds is not None
    assert tt02.lead_time_seconds > 0
    assert tt02.time_to_restore_seconds is not None
    assert tt02.time_to_restore_seconds > 0

    found = await scrape(http)
    org_env = {"org": "ttd", "environment": "tt02"}
    assert found[("fjord_deployments_finished", labels(**org_env, outcome="ready"))] == 2
    assert found[("fjord_deployments_finished", labels(**org_env, outcome="failed"))] == 1
    assert found[("fjord_lead_time_seconds_count", labels(**org_env))] == 2
    assert found[("fjord_lead_time_seconds_sum", labels(**org_env))] == pytest.approx(
        2 * tt02.lead_time_seconds
    )
    assert found[("fjord_time_to_restore_seconds_count", labels(**org_env))] == 1
    assert found[("fjord_time_to_restore_seconds_sum", labels(**org_env))] == pytest.approx(
        tt02.time_to_restore_seconds
    )
    assert not any("skjema" in value for _, sample_labels in found for _, value in sample_labels)
    # The Grafana dashboard in deploy/ asks only for series /metrics serves.
    served = set(re.findall(r"^# TYPE (\S+)", (await http.get("/metrics")).text, re.MULTILINE))
    panels = json.loads(DASHBOARD.read_text())["panels"]
    asked = {
        name for p in panels for t in p["targets"] for name in re.findall(r"fjord_\w+", t["expr"])
    }
    assert asked
    assert asked <= served, asked - served

    # The app page shows the same numbers.
    login = await http.post("/ui/login", content=f"token={reader.token}".encode())
    assert login.status_code == 303
    http.cookies = login.cookies
    page = await http.get("/ui/apps/ttd/skjema")
    assert page.status_code == 200, page.text[-600:]
    table = page.text.split('<table id="outcomes">')[1].split("</table>")[0]
    assert "<td>1, 0, 0</td>" in table
    assert "<td>33 %</td>" in table
    assert f"{duration(tt02.time_to_restore_seconds)} (1×)" in table


async def _failed_then_restored(config_dir: Path) -> None:
    """ttd/skjema with a deploy that failed, then one that became ready (rows as a worker
    leaves them: what ``fjord app outcomes`` reads)."""
    plane = await ControlPlane.open(settings(config_dir))
    try:
        await apps.create_app(plane, ADMIN, "ttd/skjema", UNUSED_REPO)
        now = utcnow()
        async with plane.db.session() as session:
            ref = await catalog.app(session, "ttd", "skjema")
            tt02 = next(e for e in await catalog.environments(session) if e.name == "tt02")
            for state, requested, finished in (("failed", 200, 150), ("ready", 100, 40)):
                session.add(
                    Deployment(
                        app_id=ref.app.id,
                        environment_id=tt02.id,
                        kind="deploy",
                        state=state,
                        requested_by="alice",
                        created_at=now - dt.timedelta(seconds=requested),
                        finished_at=now - dt.timedelta(seconds=finished),
                    )
                )
            await session.commit()
    finally:
        await plane.close()


def test_fjord_app_outcomes_prints_a_table_and_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = tmp_path / "platform.yaml"
    platform.write_text(
        json.dumps(demo_platform().model_dump(mode="json", by_alias=True, exclude_none=True))
    )
    monkeypatch.setenv("FJORD_DATA_DIR", str(tmp_path / "data"))  # as settings(tmp_path)
    monkeypatch.setenv("FJORD_PLATFORM", str(platform))
    monkeypatch.delenv("FJORD_SERVER", raising=False)
    monkeypatch.setenv("COLUMNS", "160")  # the table unwrapped
    asyncio.run(_failed_then_restored(tmp_path))
    runner = CliRunner()

    result = runner.invoke(cli, ["app", "outcomes", "ttd/skjema", "-o", "json"])
    assert result.exit_code == 0, result.output
    tt02 = next(e for e in json.loads(result.stdout)["environments"] if e["environment"] == "tt02")
    assert (tt02["ready"], tt02["failed"], tt02["change_failure_rate"]) == (1, 1, 0.5)
    assert tt02["lead_time_seconds"] == pytest.approx(60, abs=0.01)
    assert tt02["time_to_restore_seconds"] == pytest.approx(110, abs=0.01)

    table = runner.invoke(cli, ["app", "outcomes", "ttd/skjema"])
    assert table.exit_code == 0, table.output
    assert "ttd/skjema, last 90 days" in table.stdout
    assert "1m 50s (1×)" in table.stdout
    assert "50%" in table.stdout

    missing = runner.invoke(cli, ["app", "outcomes", "ttd/nope"])
    assert missing.exit_code == EXIT_NOT_FOUND
    assert "ttd/nope" in missing.output
