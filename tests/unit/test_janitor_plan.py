"""The janitor's pure plan: one test per branch of what it deletes, and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fjord.operators.credentials import naming
from fjord.operators.janitor.plan import EXPIRED, UNUSED, DeleteSecret, plan

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
OLD = "2026-01-01T00:00:00Z"


def _secret(name: str, created: str = OLD, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created, **meta}}


def _pod_using(*names: str) -> dict[str, Any]:
    volumes = [{"name": n, "secret": {"secretName": n}} for n in names]
    return {"kind": "Pod", "spec": {"volumes": volumes}}


def test_an_unused_secret_is_deleted_as_unused() -> None:
    assert plan([_secret("a")], [], now=NOW, grace=60) == [
        DeleteSecret("a", UNUSED, "deleted: nothing uses it")
    ]


def test_a_used_secret_is_kept() -> None:
    assert plan([_secret("a")], [_pod_using("a")], now=NOW, grace=60) == []


def test_a_protected_unused_secret_is_kept() -> None:
    secret = _secret("a", annotations={naming.PROTECTED: "true"})
    assert plan([secret], [], now=NOW, grace=60) == []


def test_an_expired_secret_is_deleted_even_when_used_and_protected() -> None:
    expiry = (NOW - timedelta(minutes=1)).isoformat()
    notes = {naming.EXPIRES_AT: expiry, naming.PROTECTED: "true"}
    [command] = plan([_secret("a", annotations=notes)], [_pod_using("a")], now=NOW, grace=60)
    assert (command.name, command.reason) == ("a", EXPIRED)
    assert expiry in command.message


def test_an_expiry_in_the_future_or_unreadable_keeps_a_used_secret() -> None:
    later = {naming.EXPIRES_AT: (NOW + timedelta(days=1)).isoformat()}
    garbled = {naming.EXPIRES_AT: "next tuesday"}
    secrets = [_secret("a", annotations=later), _secret("b", annotations=garbled)]
    assert plan(secrets, [_pod_using("a", "b")], now=NOW, grace=60) == []


def test_a_young_unused_secret_waits_out_the_grace_period() -> None:
    young = (NOW - timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert plan([_secret("a", created=young)], [], now=NOW, grace=60) == []
    assert [c.name for c in plan([_secret("a", created=young)], [], now=NOW, grace=5)] == ["a"]


def test_a_secret_already_being_deleted_is_left_to_its_finalizer() -> None:
    secret = _secret("a", deletionTimestamp=OLD)
    assert plan([secret], [], now=NOW, grace=60) == []


def test_app_credentials_status_keeps_its_current_secrets_and_commands_are_sorted() -> None:
    users = [{"kind": "AppCredentials", "status": {"services": [{"secretName": "b-2"}]}}]
    secrets = [_secret("c"), _secret("b-2"), _secret("b-1")]
    assert [c.name for c in plan(secrets, users, now=NOW, grace=60)] == ["b-1", "c"]
