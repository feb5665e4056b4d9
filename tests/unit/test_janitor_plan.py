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


def _app_credentials(status: dict[str, Any], rotate: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "app", "generation": 1}
    if rotate is not None:
        meta["annotations"] = {naming.ROTATE: rotate}
    spec = {"redis": {"keyPrefix": "app:", "secretName": "app-redis"}}
    return {"kind": "AppCredentials", "metadata": meta, "spec": spec, "status": status}


def test_the_secret_of_a_pending_rotation_is_kept_before_the_status_names_it() -> None:
    # The crash test's interleaving: a kill between a rotation's new Secret and the status write
    # that names it. The Secret is the one the restarted reconcile reports; deleting it raced
    # that reconcile into a Ready status naming a Secret that was gone.
    service = {"key": "redis", "kind": "redis", "baseSecretName": "app-redis"}
    status = {"services": [{**service, "secretName": "app-redis", "generation": 1}]}
    secrets = [_secret("app-redis"), _secret("app-redis-g2"), _secret("app-redis-g3")]
    pending = _app_credentials(status, rotate="r1")
    assert [c.name for c in plan(secrets, [pending], now=NOW, grace=0)] == ["app-redis-g3"]
    # Once the status names generation 2, generation 1 is unused.
    done = {"services": [{**service, "secretName": "app-redis-g2", "generation": 2}]}
    handled = _app_credentials({**done, "rotation": "r1"}, rotate="r1")
    assert [c.name for c in plan(secrets, [handled], now=NOW, grace=0)] == [
        "app-redis",
        "app-redis-g3",
    ]


def test_a_new_secret_name_in_the_spec_is_kept_before_the_status_names_it() -> None:
    service = {"key": "redis", "kind": "redis", "baseSecretName": "old-redis"}
    status = {"services": [{**service, "secretName": "old-redis", "generation": 1}]}
    users = [_app_credentials(status)]
    secrets = [_secret("old-redis"), _secret("app-redis")]
    assert plan(secrets, users, now=NOW, grace=0) == []
