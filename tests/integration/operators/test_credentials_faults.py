"""Faults: PostgreSQL or Redis down or slow while AppCredentials exist and new ones are created.

Expected (docs/operators.md): every affected AppCredentials goes Degraded with an actionable
message (never Stalled); one that was Ready stays Ready (its Secrets exist and work once the
server is back); the operator retries with growing delays (its log announces each retry, the
next attempt comes no earlier, and the metrics count them); nothing is deleted — no Secret,
no role, no ACL user; after recovery everything is Ready and the apps connect with the same
credentials they had.

"Down" stops the server (and starts it again on the same port with the same data);
"slow" freezes it with SIGSTOP, so calls hang until the operator's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_lib
from credentials_support import (
    OperatorProcess,
    app_credentials,
    install_admin_secret,
    install_crds,
    secret_data,
    start_operator,
)

from fjord.devcluster.cluster import ClusterState
from fjord.devcluster.postgres import LocalPostgres
from fjord.devcluster.redis import LocalRedis
from fjord.kube import Kube, condition

AC = ("fjord.dev/v1alpha1", "AppCredentials")
OUTAGE_TIMEOUT = 180  # generous: attempts against a dead server each wait for the timeout


@pytest.fixture(scope="module")
async def admin_ref(cluster: ClusterState, postgres: LocalPostgres, redis: LocalRedis) -> str:
    async with await Kube.connect(cluster.kubeconfig) as kube:
        await install_crds(kube)
        return await install_admin_secret(kube, postgres, redis)


@dataclass
class Running:
    process: OperatorProcess
    log: Path


@pytest.fixture
def operator(cluster: ClusterState, admin_ref: str, tmp_path: Path) -> Iterator[Running]:
    log = tmp_path / "operator.log"
    process = start_operator(Path(cluster.kubeconfig), admin_ref, log)
    try:
        yield Running(process, log)
    finally:
        process.stop()


# --- observing -----------------------------------------------------------------------------------


def _status(obj: dict[str, Any] | None, type_: str) -> str | None:
    cond = condition(obj, type_)
    return None if cond is None else str(cond.get("status"))


def degraded(obj: dict[str, Any] | None) -> bool:
    return _status(obj, "Degraded") == "True"


def healthy(obj: dict[str, Any] | None) -> bool:
    status = (obj or {}).get("status") or {}
    return (
        _status(obj, "Ready") == "True"
        and _status(obj, "Degraded") == "False"
        and _status(obj, "Stalled") == "False"
        and status.get("observedGeneration") == (obj or {}).get("metadata", {}).get("generation")
    )


async def wait(
    kube: Kube,
    namespace: str,
    name: str,
    until: Callable[[dict[str, Any] | None], bool],
    what: str,
    timeout: float = OUTAGE_TIMEOUT,
) -> dict[str, Any]:
    obj = await kube.wait_for(*AC, name, namespace, until=until, timeout=timeout, what=what)
    assert obj is not None
    return obj


@dataclass(frozen=True)
class Attempt:
    at: datetime
    retry_in: float
    reason: str


def attempts(log: Path, namespace: str, name: str) -> list[Attempt]:
    """The failed reconciles of one AppCredentials, from the operator's JSON log lines."""
    key = str((namespace, name))
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("event") == "reconcile_transient" and entry.get("key") == key:
            found.append(
                Attempt(
                    datetime.fromisoformat(entry["timestamp"]),
                    float(entry["retry_in"]),
                    str(entry["reason"]),
                )
            )
    return found


async def wait_attempts(log: Path, namespace: str, name: str, count: int) -> list[Attempt]:
    for _ in range(OUTAGE_TIMEOUT * 5):
        found = attempts(log, namespace, name)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"fewer than {count} failed attempts logged for {name}: {found}")


def transient_total(operator: OperatorProcess) -> float:
    prefix = 'fjord_operator_reconciles_total{operator="credentials",result="transient"}'
    for line in operator.metrics().splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


def assert_backs_off(found: list[Attempt]) -> None:
    """Each retry is announced with a longer delay than the one before, and the next attempt
    comes no earlier than announced (an ordering of log timestamps, not a time limit)."""
    delays = [a.retry_in for a in found]
    assert delays == sorted(delays), delays
    assert len(set(delays)) == len(delays), delays
    for earlier, later in itertools.pairwise(found):
        assert (later.at - earlier.at).total_seconds() >= earlier.retry_in, (earlier, later)


# --- the servers ---------------------------------------------------------------------------------


def _family(pid: int) -> list[int]:
    """``pid`` and its children (PostgreSQL's backends are children of the postmaster, each in
    a session of its own, so signalling the process group would miss them)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return [pid, *children]


def freeze(pid: int) -> None:
    """SIGSTOP a server and its children: pooled connections hang too, not only new ones."""
    os.kill(pid, signal.SIGSTOP)  # first: no new children after this
    for member in _family(pid)[1:]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGSTOP)


def thaw(pid: int) -> None:
    for member in _family(pid)[1:]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGCONT)
    os.kill(pid, signal.SIGCONT)


def stop_postgres(postgres: LocalPostgres) -> None:
    """A database outage: fast shutdown (SIGINT: disconnect clients), then wait for the exit.
    (``LocalPostgres.stop`` sends SIGTERM, PostgreSQL's *smart* shutdown, which waits for the
    operator's pooled connections to go away and ends in a SIGKILL.)"""
    os.kill(postgres.record.pid, signal.SIGINT)
    postgres.stop()


def restart_postgres(postgres: LocalPostgres) -> None:
    fresh = LocalPostgres.start(postgres.state_dir, port=postgres.port)
    postgres.record = fresh.record  # the session fixture stops what it holds


def restart_redis(redis: LocalRedis) -> None:
    fresh = LocalRedis.start(redis.state_dir, port=redis.port)
    redis.record = fresh.record


def role_exists(postgres: LocalPostgres, role: str) -> bool:
    with psycopg.connect(postgres.dsn) as conn:
        row = conn.execute("SELECT 1 FROM pg_roles WHERE rolname=%s", (role,)).fetchone()
        return row is not None


def acl_user_exists(redis: LocalRedis, user: str) -> bool:
    with redis.client() as client:
        return client.execute_command("ACL", "GETUSER", user) is not None


def can_use_postgres(creds: dict[str, str]) -> bool:
    with psycopg.connect(creds["url"], connect_timeout=5) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def can_use_redis(creds: dict[str, str]) -> bool:
    with redis_lib.Redis.from_url(creds["url"], socket_timeout=5) as client:
        key = creds["keyPrefix"] + "probe"
        client.set(key, "v")
        return client.get(key) == b"v"


@dataclass(frozen=True)
class Snapshot:
    """A Secret as it was: identity, version and data."""

    uid: str
    resource_version: str
    data: dict[str, str]


async def snapshot(kube: Kube, namespace: str, name: str) -> Snapshot:
    obj = await kube.get("v1", "Secret", name, namespace)
    assert obj is not None, f"Secret {name} is gone"
    meta = obj["metadata"]
    assert not meta.get("deletionTimestamp"), f"Secret {name} is being deleted"
    return Snapshot(meta["uid"], meta["resourceVersion"], secret_data(obj))


# --- the scenario --------------------------------------------------------------------------------


async def ready_app(kube: Kube, namespace: str, name: str) -> dict[str, Snapshot]:
    await kube.apply(app_credentials(namespace, name))
    await wait(kube, namespace, name, healthy, "Ready", timeout=60)
    return {s: await snapshot(kube, namespace, s) for s in (f"{name}-pg-main", f"{name}-redis")}


async def touch(kube: Kube, namespace: str, name: str, value: str) -> None:
    """A label change: an event, so the operator re-checks the users of ``name`` now."""
    await kube.patch(*AC, name, {"metadata": {"labels": {"touched": value}}}, namespace)


def assert_actionable(obj: dict[str, Any], reason_prefix: str, address: str) -> None:
    cond = condition(obj, "Degraded")
    assert cond is not None
    assert str(cond["reason"]).startswith(reason_prefix), cond
    message = str(cond["message"])
    assert address in message, message  # which server
    assert "retrying with backoff" in message, message  # what the operator does about it
    assert "check that the server is up" in message, message  # what the reader can do
    assert _status(obj, "Stalled") == "False", obj["status"]
    assert _status(obj, "Reconciling") == "True", obj["status"]


async def assert_nothing_deleted(kube: Kube, namespace: str, before: dict[str, Snapshot]) -> None:
    for name, old in before.items():
        now = await snapshot(kube, namespace, name)
        assert now.uid == old.uid, f"Secret {name} was re-created"
        assert now.data == old.data, f"Secret {name} changed its credentials"


async def outage(
    kube: Kube,
    namespace: str,
    running: Running,
    *,
    down: Callable[[], None],
    up: Callable[[], None],
    reason_prefix: str,
    address: str,
    min_attempts: int,
) -> tuple[dict[str, Snapshot], dict[str, Snapshot]]:
    """``old`` Ready before the outage, ``new`` created during it; both Ready after it."""
    before = await ready_app(kube, namespace, "old")
    down()
    try:
        await kube.apply(app_credentials(namespace, "new"))
        await touch(kube, namespace, "old", "1")
        new = await wait(kube, namespace, "new", degraded, "Degraded")
        assert _status(new, "Ready") == "False"  # never had credentials: not Ready
        assert_actionable(new, reason_prefix, address)
        old = await wait(kube, namespace, "old", degraded, "Degraded")
        assert _status(old, "Ready") == "True"  # its Secrets exist: still Ready, but Degraded
        assert_actionable(old, reason_prefix, address)

        first = await wait_attempts(running.log, namespace, "new", 2)
        counted = transient_total(running.process)
        later = await wait_attempts(running.log, namespace, "new", min_attempts)
        assert transient_total(running.process) > counted  # the metrics see the retries
        assert all(a.reason.startswith(reason_prefix) for a in later)
        assert later[: len(first)] == first
        assert_backs_off(later)
        await assert_nothing_deleted(kube, namespace, before)
    finally:
        up()
    for name in ("old", "new"):
        await wait(kube, namespace, name, healthy, "Ready again")
    await assert_nothing_deleted(kube, namespace, before)
    after = {s: await snapshot(kube, namespace, s) for s in ("new-pg-main", "new-redis")}
    return before, after


# --- tests ---------------------------------------------------------------------------------------


async def test_postgresql_down(
    kube: Kube,
    namespace: str,
    operator: Running,
    postgres: LocalPostgres,
    redis: LocalRedis,
) -> None:
    before, after = await outage(
        kube,
        namespace,
        operator,
        down=lambda: stop_postgres(postgres),
        up=lambda: restart_postgres(postgres),
        reason_prefix="PostgreSQL",
        address=f"127.0.0.1:{postgres.port}",
        min_attempts=4,
    )
    old_pg, new_pg = before["old-pg-main"].data, after["new-pg-main"].data
    assert role_exists(postgres, old_pg["user"])
    assert acl_user_exists(redis, before["old-redis"].data["username"])
    assert can_use_postgres(old_pg)
    assert can_use_postgres(new_pg)
    assert can_use_redis(before["old-redis"].data)
    assert can_use_redis(after["new-redis"].data)


async def test_postgresql_slow(
    kube: Kube, namespace: str, operator: Running, postgres: LocalPostgres
) -> None:
    pid = postgres.record.pid
    before, after = await outage(
        kube,
        namespace,
        operator,
        down=lambda: freeze(pid),
        up=lambda: thaw(pid),
        reason_prefix="PostgreSQL",
        address=f"127.0.0.1:{postgres.port}",
        min_attempts=3,
    )
    assert role_exists(postgres, before["old-pg-main"].data["user"])
    assert can_use_postgres(before["old-pg-main"].data)
    assert can_use_postgres(after["new-pg-main"].data)


async def test_redis_down(
    kube: Kube,
    namespace: str,
    operator: Running,
    postgres: LocalPostgres,
    redis: LocalRedis,
) -> None:
    before, after = await outage(
        kube,
        namespace,
        operator,
        down=redis.stop,
        up=lambda: restart_redis(redis),
        reason_prefix="Redis",
        address=f"127.0.0.1:{redis.port}",
        min_attempts=4,
    )
    # The ACL user was saved to the ACL file and is back after the restart, same password.
    assert acl_user_exists(redis, before["old-redis"].data["username"])
    assert can_use_redis(before["old-redis"].data)
    assert can_use_redis(after["new-redis"].data)
    assert can_use_postgres(before["old-pg-main"].data)


async def test_redis_slow(kube: Kube, namespace: str, operator: Running, redis: LocalRedis) -> None:
    pid = redis.record.pid
    before, after = await outage(
        kube,
        namespace,
        operator,
        down=lambda: freeze(pid),
        up=lambda: thaw(pid),
        reason_prefix="Redis",
        address=f"127.0.0.1:{redis.port}",
        min_attempts=3,
    )
    assert acl_user_exists(redis, before["old-redis"].data["username"])
    assert can_use_redis(before["old-redis"].data)
    assert can_use_redis(after["new-redis"].data)
