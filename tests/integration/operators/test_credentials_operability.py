"""Operability of the credentials operator: metrics that grow, Events on Ready and Degraded,
and logs (the subprocess's whole output, at DEBUG) that never contain a generated password."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path
from typing import Any

from credentials_support import (
    app_credentials,
    install_admin_secret,
    install_crds,
    secret_data,
    start_operator,
)

from fjord.devcluster.cluster import ClusterState
from fjord.devcluster.postgres import LocalPostgres
from fjord.devcluster.redis import LocalRedis
from fjord.kube import Kube, is_true

AC = ("fjord.dev/v1alpha1", "AppCredentials")
SAMPLE = re.compile(r"^(fjord_operator_\w+)\{([^}]*)\} (\S+)$")


def counter(text: str, name: str, **labels: str) -> float:
    """The sum of a counter's samples whose labels include ``labels``."""
    found = 0.0
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if not match or match.group(1) != name:
            continue
        have = dict(p.split("=", 1) for p in match.group(2).split(","))
        if all(have.get(k) == f'"{v}"' for k, v in labels.items()):
            found += float(match.group(3))
    return found


def healthy(obj: dict[str, Any] | None) -> bool:
    status = (obj or {}).get("status") or {}
    return (
        is_true(obj, "Ready")
        and not is_true(obj, "Degraded")
        and status.get("observedGeneration") == (obj or {}).get("metadata", {}).get("generation")
    )


async def events_about(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in await kube.items("events.k8s.io/v1", "Event", namespace)
        if (e.get("regarding") or {}).get("kind") == "AppCredentials"
        and (e.get("regarding") or {}).get("name") == name
    ]


async def wait_event(kube: Kube, namespace: str, name: str, type_: str, reason: str) -> None:
    def seen(events: list[dict[str, Any]]) -> bool:
        return any(e.get("type") == type_ and e.get("reason") == reason for e in events)

    for _ in range(300):
        if seen(await events_about(kube, namespace, name)):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(
        f"no {type_} Event {reason} on {name}: {await events_about(kube, namespace, name)}"
    )


async def test_metrics_events_and_logs(
    kube: Kube,
    namespace: str,
    cluster: ClusterState,
    postgres: LocalPostgres,
    redis: LocalRedis,
    tmp_path: Path,
) -> None:
    await install_crds(kube)
    admin = await install_admin_secret(kube, postgres, redis)
    log = tmp_path / "operator.log"
    operator = start_operator(Path(cluster.kubeconfig), admin, log, extra=["--log-level", "DEBUG"])
    try:
        before = operator.metrics()
        await kube.apply(app_credentials(namespace, "first"))
        await kube.wait_for(*AC, "first", namespace, until=healthy, timeout=60)
        middle = operator.metrics()
        await kube.apply(app_credentials(namespace, "second"))
        await kube.wait_for(*AC, "second", namespace, until=healthy, timeout=60)
        after = operator.metrics()

        # Counters grow with the work done.
        for name, labels in (
            ("fjord_operator_reconciles_total", {"operator": "credentials", "result": "ok"}),
            ("fjord_operator_api_requests_total", {"operator": "credentials", "verb": "get"}),
            ("fjord_operator_api_writes_total", {"operator": "credentials", "verb": "create"}),
            ("fjord_operator_reconcile_seconds_count", {"operator": "credentials"}),
        ):
            series = [counter(text, name, **labels) for text in (before, middle, after)]
            assert series[0] < series[1] < series[2], (name, series)

        # An Event when it becomes Ready …
        await wait_event(kube, namespace, "first", "Normal", "Ready")
        # … and when it becomes Degraded (Redis frozen: calls time out), then Ready again.
        redis.pause()
        try:
            await kube.patch(*AC, "first", {"metadata": {"labels": {"t": "1"}}}, namespace)
            await kube.wait_for(
                *AC, "first", namespace, until=lambda o: is_true(o, "Degraded"), timeout=90
            )
            await wait_event(kube, namespace, "first", "Warning", "RedisTimeout")
        finally:
            redis.resume()
        await kube.wait_for(*AC, "first", namespace, until=healthy, timeout=120)
        ready_events = [
            e for e in await events_about(kube, namespace, "first") if e.get("reason") == "Ready"
        ]
        assert len(ready_events) == 2, ready_events  # created, then recovered
        assert (
            counter(operator.metrics(), "fjord_operator_errors_total", reason="RedisTimeout") >= 1
        )
    finally:
        operator.stop()

    # Nothing the operator wrote to its output contains a generated password, in clear text
    # or base64 (as in a Secret's data).
    output = log.read_text(errors="replace")
    assert "reconciled" in output  # the log is the operator's, and it logged its work
    passwords = []
    for name in ("first-pg-main", "first-redis", "second-pg-main", "second-redis"):
        obj = await kube.get("v1", "Secret", name, namespace)
        assert obj is not None
        passwords.append(secret_data(obj)["password"])
    assert len(set(passwords)) == 4
    for password in passwords:
        assert password not in output
        assert base64.b64encode(password.encode()).decode() not in output
    assert postgres.password not in output  # nor the admin's
    assert redis.password not in output
