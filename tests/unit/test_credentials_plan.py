"""The pure reconcile plan and the janitor's usage rules of the credentials operator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fjord.operators.common import conditions
from fjord.operators.credentials import naming
from fjord.operators.credentials.plan import ObservedSecret, make_plan
from fjord.operators.credentials.request import requests
from fjord.operators.janitor.plan import to_delete
from fjord.spec.infra import AppCredentialsSpec

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _body(status: dict[str, Any] | None = None, rotate: str | None = None) -> dict[str, Any]:
    spec = {
        "postgresql": {"databases": [{"name": "main", "secretName": "app-pg-main"}]},
        "redis": {"keyPrefix": "app:", "secretName": "app-redis"},
    }
    meta: dict[str, Any] = {"name": "app", "namespace": "ns", "generation": 1}
    if rotate:
        meta["annotations"] = {naming.ROTATE: rotate}
    return {"metadata": meta, "spec": spec, "status": status or {}}


def _spec(body: dict[str, Any]) -> AppCredentialsSpec:
    return AppCredentialsSpec.model_validate(body["spec"])


def _converged(body: dict[str, Any]) -> dict[str, ObservedSecret | None]:
    spec = _spec(body)
    plan = make_plan(body, spec, {}, now=NOW, resync=3600)
    assert plan.status is not None
    body["status"] = plan.status
    return {
        r.key: ObservedSecret(
            next(s["secretName"] for s in plan.status["services"] if s["key"] == r.key),
            True,
            r.spec_hash,
            True,
        )
        for r in requests(spec)
    }


def test_first_reconcile_creates_both_services_then_nothing() -> None:
    body = _body()
    plan = make_plan(body, _spec(body), {}, now=NOW, resync=3600)
    assert [e.target.secret_name for e in plan.ensures] == ["app-pg-main", "app-redis"]
    assert plan.status is not None
    assert conditions.find(plan.status["conditions"], "Ready")["status"] == "True"  # type: ignore[index]
    observed = _converged(body)
    again = make_plan(body, _spec(body), observed, now=NOW + timedelta(minutes=5), resync=3600)
    assert again.ensures == []
    assert again.status is None  # a no-op reconcile writes nothing
    assert again.requeue_after == 3600


def test_missing_external_user_is_recreated_keeping_the_secret() -> None:
    body = _body()
    observed = _converged(body)
    gone = observed["redis"]
    assert gone is not None
    observed["redis"] = ObservedSecret(gone.name, True, gone.spec_hash, False)
    plan = make_plan(body, _spec(body), observed, now=NOW, resync=3600)
    assert [(e.request.key, e.existing) for e in plan.ensures] == [("redis", True)]


def test_rotation_moves_to_the_next_generation_name() -> None:
    body = _body()
    _converged(body)
    body["metadata"]["annotations"] = {naming.ROTATE: "2026-11"}
    plan = make_plan(body, _spec(body), {}, now=NOW, resync=3600)
    assert [e.target.secret_name for e in plan.ensures] == ["app-pg-main-g2", "app-redis-g2"]
    assert plan.status is not None
    assert plan.status["rotation"] == "2026-11"


def test_foreign_secret_with_the_name_is_a_conflict() -> None:
    body = _body()
    observed: dict[str, ObservedSecret | None] = {
        "postgresql/main": ObservedSecret("app-pg-main", False, None, False)
    }
    plan = make_plan(body, _spec(body), observed, now=NOW, resync=3600)
    assert plan.conflicts == ["app-pg-main"]
    assert plan.ensures == []


def test_our_secret_being_deleted_is_waited_for_not_a_conflict() -> None:
    # Found by the crash test: a kill lost the status write of a rotation, the janitor then
    # deleted the new generation's Secret, and the restarted operator saw it terminating.
    body = _body()
    observed: dict[str, ObservedSecret | None] = {
        "postgresql/main": ObservedSecret("app-pg-main", True, None, False, terminating=True)
    }
    plan = make_plan(body, _spec(body), observed, now=NOW, resync=3600)
    assert plan.conflicts == []
    assert plan.waiting_for == ["app-pg-main"]
    assert plan.ensures == []
    assert plan.requeue_after is not None
    assert plan.requeue_after < 60


def test_a_ready_status_is_withdrawn_while_its_secret_is_being_deleted() -> None:
    # Ready promises that the Secrets the status names exist: one of them being deleted (the
    # janitor, a person) makes it not Ready, once, until the next pass recreates the Secret.
    body = _body()
    observed = _converged(body)
    current = observed["redis"]
    assert current is not None
    observed["redis"] = ObservedSecret(current.name, True, current.spec_hash, False, True)
    plan = make_plan(body, _spec(body), observed, now=NOW, resync=3600)
    assert plan.waiting_for == ["app-redis"]
    assert plan.status is not None
    ready = conditions.find(plan.status["conditions"], "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "SecretBeingDeleted")
    assert "app-redis" in ready["message"]
    assert plan.status["services"] == body["status"]["services"]  # the names stay
    body["status"] = plan.status
    assert make_plan(body, _spec(body), observed, now=NOW, resync=3600).status is None
    observed["redis"] = None  # gone: recreated under the same name, then Ready again
    again = make_plan(body, _spec(body), observed, now=NOW, resync=3600)
    assert [(e.target.secret_name, e.existing) for e in again.ensures] == [("app-redis", False)]
    assert again.status is not None
    assert conditions.find(again.status["conditions"], "Ready")["status"] == "True"  # type: ignore[index]


def test_expiry_requeues_at_expires_at_and_then_expires() -> None:
    body = _body()
    body["spec"]["expiresAt"] = (NOW + timedelta(seconds=90)).isoformat()
    plan = make_plan(body, _spec(body), {}, now=NOW, resync=3600)
    assert plan.requeue_after == 90
    assert make_plan(body, _spec(body), {}, now=NOW + timedelta(seconds=91), resync=3600).expired


def test_condition_transition_time_changes_only_with_status() -> None:
    first = conditions.set_condition([], "Ready", True, "A", "a", generation=1, now=NOW)
    later = conditions.set_condition(
        first, "Ready", True, "B", "b", generation=2, now=NOW + timedelta(hours=1)
    )
    assert later[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    flipped = conditions.set_condition(
        later, "Ready", False, "C", "c", generation=2, now=NOW + timedelta(hours=2)
    )
    assert flipped[0]["lastTransitionTime"] != first[0]["lastTransitionTime"]


def _secret(name: str, **notes: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "annotations": notes,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        }
    }


def test_janitor_deletes_unused_keeps_used_protected_and_young() -> None:
    secrets = [
        _secret("used-by-rs"),
        _secret("unused"),
        _secret("protected", **{naming.PROTECTED: "true"}),
        _secret(
            "expired", **{naming.PROTECTED: "true", naming.EXPIRES_AT: "2026-01-02T00:00:00+00:00"}
        ),
        {"metadata": {"name": "young", "creationTimestamp": NOW.strftime("%Y-%m-%dT%H:%M:%SZ")}},
        _secret("current"),
    ]
    users = [
        {
            "kind": "ReplicaSet",
            "spec": {"template": {"spec": {"volumes": [{"secret": {"secretName": "used-by-rs"}}]}}},
        },
        {"kind": "AppCredentials", "spec": {}, "status": {"services": [{"secretName": "current"}]}},
    ]
    assert to_delete(secrets, users, now=NOW, grace=60) == ["expired", "unused"]
