"""The status a Maskinporten reconcile reports, built from the typed model: every branch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fjord.operators.common.conditions import find
from fjord.operators.maskinporten.status import (
    MAX_ACTIONS,
    Failure,
    Report,
    Verdict,
    failed,
    status_patch,
)
from fjord.spec.infra import DEGRADED, READY, STALLED, MaskinportenClientReason

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
REPORT = Report(
    client_id="c-1",
    authority="https://maskinporten.example/",
    key_ids=("k2", "k1"),
    secret_name="app-mp",
    rotation_request=None,
    next_rotation=NOW.timestamp() + 86400,
)
SYNCED = Verdict(True, MaskinportenClientReason.SYNCED, "in sync")


def _body(status: dict[str, Any] | None = None, generation: int = 2) -> dict[str, Any]:
    return {"metadata": {"name": "app", "generation": generation}, "status": status or {}}


def _action(n: int) -> dict[str, Any]:
    return {
        "action": "WriteSecret",
        "result": "ok",
        "detail": f"#{n}",
        "time": "2026-11-21T12:00:00Z",
    }


def test_a_synced_pass_reports_the_client_keys_and_next_rotation() -> None:
    patch = status_patch(_body(), SYNCED, [], REPORT, now=NOW)
    assert patch is not None
    assert patch["observedGeneration"] == 2
    assert patch["clientId"] == "c-1"
    assert patch["keyIds"] == ["k2", "k1"]
    assert patch["nextRotation"] == "2026-11-22T12:00:00Z"
    assert patch["rotationRequest"] is None  # set to None: the merge patch removes it
    ready = find(patch["conditions"], READY)
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("True", "Synced")
    assert "lastActions" not in patch  # no commands ran: the history is left alone


def test_reporting_the_same_again_writes_nothing() -> None:
    first = status_patch(_body(), SYNCED, [], REPORT, now=NOW)
    assert first is not None
    later = NOW + timedelta(hours=1)
    assert status_patch(_body(first), SYNCED, [], REPORT, now=later) is None


def test_a_failed_pass_touches_only_conditions_and_generation() -> None:
    verdict = Verdict(False, "DigdirError", "boom", reconciling=True, degraded=True)
    patch = status_patch(_body(), verdict, [], None, now=NOW)
    assert patch is not None
    assert set(patch) == {"observedGeneration", "conditions"}
    degraded = find(patch["conditions"], DEGRADED)
    assert degraded is not None
    assert (degraded["status"], degraded["reason"]) == ("True", "DigdirError")


def test_actions_are_recorded_newest_first_and_bounded() -> None:
    stored = [_action(n) for n in range(100, 100 + MAX_ACTIONS)]
    patch = status_patch(
        _body({"lastActions": stored}), SYNCED, [_action(1), _action(2)], None, now=NOW
    )
    assert patch is not None
    details = [a["detail"] for a in patch["lastActions"]]
    assert details[:3] == ["#2", "#1", "#100"]
    assert len(details) == MAX_ACTIONS


def test_a_transient_failure_of_a_ready_generation_stays_ready() -> None:
    ready = status_patch(_body(), SYNCED, [], REPORT, now=NOW)
    assert ready is not None
    verdict = failed(_body(ready), Failure(True, "DigdirUnavailable", "503"), attempt=3)
    assert (verdict.ready, verdict.degraded, verdict.reconciling) == (True, True, True)
    assert verdict.message.startswith("the Secret still works; ")
    assert "attempt 3" in verdict.message


def test_a_transient_failure_of_a_new_generation_is_not_ready() -> None:
    ready = status_patch(_body(generation=1), SYNCED, [], REPORT, now=NOW)
    assert ready is not None
    verdict = failed(_body(ready, generation=2), Failure(True, "DigdirUnavailable", "503"), 1)
    assert (verdict.ready, verdict.degraded) == (False, True)


def test_a_permanent_failure_stalls() -> None:
    verdict = failed(_body(), Failure(False, "DigdirRejected", "scope not granted"), attempt=1)
    assert (verdict.ready, verdict.stalled, verdict.degraded) == (False, True, False)
    patch = status_patch(_body(), verdict, [], None, now=NOW)
    assert patch is not None
    stalled = find(patch["conditions"], STALLED)
    assert stalled is not None
    assert (stalled["status"], stalled["message"]) == ("True", "scope not granted")
