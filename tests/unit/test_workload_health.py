"""Why a Pod cannot run, as the kubelet reports it: the reason fjord shows for a failed deploy."""

from __future__ import annotations

from typing import Any

from fjord.operators.workloads.health import NOT_READY, READINESS_GRACE_SECONDS, pod_failure


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
