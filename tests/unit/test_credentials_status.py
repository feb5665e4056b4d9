"""Failure status, watch-event predicate and deletion policy of the credentials operator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fjord.operators.common import conditions
from fjord.operators.common.runtime import needs_reconcile
from fjord.operators.credentials.plan import failure_status, make_plan
from fjord.operators.credentials.request import requests
from fjord.spec.infra import AppCredentialsSpec, AppCredentialsStatus

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _ready_body(policy: str | None = None) -> dict[str, Any]:
    postgresql: dict[str, Any] = {"databases": [{"name": "main", "secretName": "app-pg-main"}]}
    if policy:
        postgresql["deletionPolicy"] = policy
    body: dict[str, Any] = {
        "metadata": {"name": "app", "namespace": "ns", "generation": 3},
        "spec": {"postgresql": postgresql, "redis": {"keyPrefix": "a:", "secretName": "app-r"}},
        "status": {},
    }
    plan = make_plan(body, AppCredentialsSpec.model_validate(body["spec"]), {}, now=NOW, resync=60)
    body["status"] = plan.status
    return body


def _cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    found = conditions.find(status["conditions"], type_)
    assert found is not None
    return found


def test_status_validates_against_its_model() -> None:
    status = AppCredentialsStatus.model_validate(_ready_body()["status"])
    assert [(s.key, s.secret_name, s.generation, s.state) for s in status.services] == [
        ("postgresql/main", "app-pg-main", 1, "Ready"),
        ("redis", "app-r", 1, "Ready"),
    ]


def test_transient_failure_of_a_ready_object_keeps_ready_and_marks_the_service() -> None:
    body = _ready_body()
    later = NOW + timedelta(minutes=1)
    status = failure_status(
        body,
        reason="RedisUnavailable",
        message="down",
        permanent=False,
        now=later,
        service="redis",
    )
    assert status is not None
    assert _cond(status, "Ready")["status"] == "True"
    assert _cond(status, "Degraded") | {"lastTransitionTime": None} == {
        "type": "Degraded",
        "status": "True",
        "reason": "RedisUnavailable",
        "message": "down",
        "lastTransitionTime": None,
        "observedGeneration": 3,
    }
    assert _cond(status, "Stalled")["status"] == "False"
    assert [s["state"] for s in status["services"]] == ["Ready", "Degraded"]
    body["status"] = status
    again = failure_status(
        body,
        reason="RedisUnavailable",
        message="down",
        permanent=False,
        now=later,
        service="redis",
    )
    assert again is None  # the same failure again writes nothing


def test_permanent_failure_or_new_generation_is_not_ready() -> None:
    body = _ready_body()
    stalled = failure_status(
        body, reason="InvalidSpec", message="bad", permanent=True, now=NOW, service=None
    )
    assert stalled is not None
    assert _cond(stalled, "Ready")["status"] == "False"
    assert _cond(stalled, "Stalled")["status"] == "True"
    assert _cond(stalled, "Degraded")["status"] == "False"
    body["metadata"]["generation"] = 4
    newer = failure_status(body, reason="X", message="x", permanent=False, now=NOW)
    assert newer is not None
    assert _cond(newer, "Ready")["status"] == "False"


def test_only_own_status_writes_are_not_reconciled() -> None:
    body = _ready_body()
    assert needs_reconcile(None, body)
    status_only = {**body, "status": {**body["status"], "services": []}}
    assert not needs_reconcile(body, status_only)
    for change in (
        {"generation": 4},
        {"labels": {"touched": "1"}},
        {"annotations": {"fjord.dev/rotate": "r1"}},
        {"deletionTimestamp": "2026-11-21T12:00:00Z"},
    ):
        assert needs_reconcile(body, {**body, "metadata": {**body["metadata"], **change}})
    assert needs_reconcile(body, {**body, "status": {}})  # status cleared: resync


def test_deletion_policy_reaches_the_request_only_when_delete() -> None:
    retain = requests(AppCredentialsSpec.model_validate(_ready_body()["spec"]))
    explicit = requests(AppCredentialsSpec.model_validate(_ready_body("Retain")["spec"]))
    delete = requests(AppCredentialsSpec.model_validate(_ready_body("Delete")["spec"]))
    assert retain[0].spec_hash == explicit[0].spec_hash  # no rewrite of existing Secrets
    assert delete[0].settings["deletionPolicy"] == "Delete"
    assert delete[0].spec_hash != retain[0].spec_hash  # Secrets get the new annotation
