"""The shared operator runtime: enqueue predicates, event routing and the Secrets selector."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any

import kopf
from prometheus_client import CollectorRegistry

from fjord.maskinporten.secret_format import SECRET_KEYS
from fjord.operators.common.metrics import OperatorMetrics
from fjord.operators.common.result import Result
from fjord.operators.common.runner import OperatorContext, in_cluster
from fjord.operators.common.runtime import Runtime, finalizing, needs_reconcile
from fjord.operators.maskinporten.act import data_hash
from fjord.operators.maskinporten.model import HASH_ANNOTATION, OWNER_LABEL
from fjord.operators.maskinporten.setup import drifted_secret_owner


def _context() -> OperatorContext:
    return OperatorContext(None, (), OperatorMetrics.create(CollectorRegistry()))


def _obj(name: str, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, **meta}}


def test_the_secrets_selector_is_the_union_of_every_operators_managers() -> None:
    context = _context()
    assert context.watch_secrets_of("fjord-credentials") == (
        "app.kubernetes.io/managed-by in (fjord-credentials)"
    )
    assert context.watch_secrets_of("fjord") == (
        "app.kubernetes.io/managed-by in (fjord,fjord-credentials)"
    )


def test_finalizing_wants_only_objects_being_deleted_with_the_finalizer() -> None:
    wanted = finalizing("fjord.dev/x")
    assert wanted(None, _obj("a", deletionTimestamp="t", finalizers=["fjord.dev/x"]))
    assert not wanted(None, _obj("a", deletionTimestamp="t", finalizers=["other"]))
    assert not wanted(None, _obj("a", finalizers=["fjord.dev/x"]))


def test_a_secret_we_wrote_is_repaired_when_deleted_or_changed() -> None:
    secret = _obj("app-mp", labels={OWNER_LABEL: "app"})
    key = sorted(SECRET_KEYS)[0]
    secret["data"] = {key: "dg=="}
    secret["metadata"]["annotations"] = {HASH_ANNOTATION: data_hash(secret)}
    assert drifted_secret_owner("MODIFIED", secret) is None
    assert drifted_secret_owner("DELETED", secret) == ("ns", "app")
    edited = {**secret, "data": {key: "dw=="}}
    assert drifted_secret_owner("MODIFIED", edited) == ("ns", "app")
    assert drifted_secret_owner("MODIFIED", _obj("unrelated")) is None


async def test_route_enqueues_wanted_events_remembers_known_and_forgets_deleted() -> None:
    runs: list[tuple[Hashable, dict[str, Any]]] = []
    forgotten: list[tuple[str, str]] = []
    done = asyncio.Event()

    async def reconcile(key: Hashable, body: dict[str, Any], _: int) -> Result:
        runs.append((key, body))
        done.set()
        return Result()

    runtime = Runtime("test", _context())
    assert runtime.route("q", "ADDED", _obj("a"), wanted=lambda *_: True) is None  # not started
    runtime.controller("q", reconcile, workers=1, on_forget=forgotten.append)
    wanted_spec_changes = lambda old, new: old is None or old["spec"] != new["spec"]  # noqa: E731

    runtime.route("q", "ADDED", {**_obj("a"), "spec": 1}, wanted=wanted_spec_changes)
    await asyncio.wait_for(done.wait(), 5)
    assert runs == [(("ns", "a"), {**_obj("a"), "spec": 1})]

    # Not wanted but known: the newest body is kept for the next run, nothing is scheduled.
    status_only = {**_obj("a"), "spec": 1, "status": "new"}
    runtime.route("q", "MODIFIED", status_only, wanted=wanted_spec_changes)
    assert runtime.controllers["q"].latest(("ns", "a")) == status_only
    # Not wanted and unknown: not kept at all.
    runtime.route("q", "MODIFIED", _obj("b"), wanted=lambda *_: False)
    assert runtime.controllers["q"].latest(("ns", "b")) is None

    assert runtime.route("q", "DELETED", status_only, wanted=wanted_spec_changes) == ("ns", "a")
    assert forgotten == [("ns", "a")]
    assert runtime.controllers["q"].latest(("ns", "a")) is None
    await runtime.stop()
    assert len(runs) == 1


def test_a_metadata_only_change_before_the_first_status_is_not_reconciled_again() -> None:
    # The reconcile's own finalizer patch comes back while its first pass still runs.
    new = {"metadata": {"name": "a", "generation": 1}, "spec": {}}
    with_finalizer = {**new, "metadata": {**new["metadata"], "finalizers": ["fjord.dev/x"]}}
    assert needs_reconcile(None, new)
    assert not needs_reconcile(new, with_finalizer)
    # … but a status someone else wrote for an older generation is: resync.
    foreign = {**with_finalizer, "status": {"observedGeneration": 0, "conditions": []}}
    assert needs_reconcile(with_finalizer, foreign)


def test_in_cluster_login_uses_the_service_address_not_cluster_dns() -> None:
    info = kopf.ConnectionInfo(server="https://kubernetes.default.svc", token="t")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster(info, env) == kopf.ConnectionInfo(server="https://10.96.0.1:443", token="t")
    v6 = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster(info, v6) == kopf.ConnectionInfo(server="https://[fd00::1]:443", token="t")
    assert in_cluster(info, {}) == info  # not in a Pod: kopf's default stays
    assert in_cluster(None, env) is None  # no ServiceAccount token
