"""Why a Pod cannot run, as the kubelet reports it: the reason fjord shows for a failed deploy."""

from __future__ import annotations

from typing import Any

from fjord.operators.workloads.health import (
    NOT_READY,
    READINESS_GRACE_SECONDS,
    REVISION,
    of_newest_revision,
    pod_failure,
)


def pod(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "web-1"}, "status": {"containerStatuses": list(containers)}}


def test_an_image_that_cannot_be_pulled_is_named_with_the_kubelets_message() -> None:
    waiting = {"reason": "ErrImagePull", "message": "failed to resolve reference x:1: not found"}
    failure = pod_failure(pod({"name": "app", "state": {"waiting": waiting}}))
    assert failure is not None
    assert failure.message == (
        "Pod web-1: container app: ErrImagePull: failed to resolve reference x:1: not found"
    )


def test_a_crash_loop_names_the_last_exit() -> None:
    status = {
        "name": "app",
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
    }
    failure = pod_failure(pod(status))
    assert failure is not None
    assert failure.reason == "CrashLoopBackOff"
    assert failure.detail == "last exit code 1 (Error)"


def test_starting_and_running_pods_are_not_failures() -> None:
    assert (
        pod_failure(pod({"name": "app", "state": {"waiting": {"reason": "ContainerCreating"}}}))
        is None
    )
    running = {"name": "app", "state": {"running": {}}, "ready": True}
    assert pod_failure(pod(running)) is None
    assert pod_failure({"metadata": {"name": "p"}, "status": {}}) is None


def test_a_running_container_that_never_gets_ready_fails_after_the_grace() -> None:
    unready = {"name": "app", "state": {"running": {}}, "ready": False}
    assert pod_failure(pod(unready), running_for=5) is None
    failure = pod_failure(pod(unready), running_for=READINESS_GRACE_SECONDS)
    assert failure is not None
    assert failure.reason == NOT_READY


def owned(kind: str, name: str, revision: str | None = None, **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": f"{name}-child",
        "ownerReferences": [{"kind": kind, "name": name, "controller": True}],
        **meta,
    }
    if revision is not None:
        metadata["annotations"] = {REVISION: revision}
    return {"metadata": metadata}


def test_only_pods_of_the_deployments_newest_replicaset_speak_for_the_rollout() -> None:
    deployment = {"metadata": {"name": "web", "annotations": {REVISION: "3"}}}
    newest = owned("Deployment", "web", "3")
    replaced = owned("Deployment", "web", "2")
    pod = owned("ReplicaSet", "web-abc")
    assert of_newest_revision(pod, newest, deployment)
    # The Pod of the revision before (stuck pulling a missing image) is not the new one's reason.
    assert not of_newest_revision(pod, replaced, deployment)
    assert not of_newest_revision(pod, None, deployment)  # its ReplicaSet is gone
    assert not of_newest_revision(pod, newest, None)
    deleting = owned("ReplicaSet", "web-abc", deletionTimestamp="2026-12-07T06:00:00Z")
    assert not of_newest_revision(deleting, newest, deployment)
    # Pods of other controllers (or none) have no revision to compare: they count.
    assert of_newest_revision({"metadata": {"name": "bare"}}, None, None)
    assert of_newest_revision(pod, {"metadata": {"name": "web-abc"}}, None)


def test_a_revision_counts_as_applied_once_flux_checks_its_health() -> None:
    from fjord.operators.workloads.handlers import _applied

    revision = "tt02@sha256:4e"

    def status(*conditions: dict[str, str]) -> dict[str, object]:
        return {"conditions": list(conditions)}

    building = {"type": "Reconciling", "message": f"Building manifests for revision {revision} x"}
    checking = {
        "type": "Reconciling",
        "message": f"Running health checks for revision {revision} with a timeout of 5m0s",
    }
    failed = {"type": "Ready", "status": "False", "reason": "HealthCheckFailed"}
    progressing = {"type": "Ready", "status": "Unknown", "reason": "Progressing"}
    assert not _applied(status(building, progressing), revision)  # the old Pods still run
    assert _applied(status(checking, progressing), revision)
    assert not _applied(status(checking), "tt02@sha256:4")  # another revision's check
    assert _applied(status(failed), revision)
    assert not _applied(status(), revision)
