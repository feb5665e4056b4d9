"""Why an app's Pod cannot run, from its status as the kubelet reports it (pure).

Flux's health check of a Deployment says only ``status: 'InProgress'`` or ``'Failed'`` (its
message drops kstatus' reason, see docs/real-nodes.md), so the cause a service owner needs,
``ErrImagePull``, ``CrashLoopBackOff``, a readiness probe that never passes, is read here from
the Pods themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Waiting reasons the kubelet keeps retrying but that will not resolve by waiting.
FAILING_WAITS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
NOT_READY = "ReadinessProbeFailing"
# A running container that is not Ready this long after starting counts as failing readiness
# (generous: a Python app importing its libraries on a loaded 2-core node took over a minute).
READINESS_GRACE_SECONDS = 180.0


@dataclass(frozen=True)
class PodFailure:
    pod: str
    container: str
    reason: str
    detail: str

    @property
    def message(self) -> str:
        text = f"Pod {self.pod}: container {self.container}: {self.reason}"
        return f"{text}: {self.detail}" if self.detail else text


def _terminated(status: Mapping[str, Any]) -> str:
    last = (status.get("lastState") or {}).get("terminated") or {}
    if not last:
        return ""
    return f"last exit code {last.get('exitCode')} ({last.get('reason', 'Error')})"


def pod_failure(pod: Mapping[str, Any], *, running_for: float = 0.0) -> PodFailure | None:
    """The first failing container of ``pod``; ``running_for``: seconds since it started."""
    name = str((pod.get("metadata") or {}).get("name", ""))
    status = pod.get("status") or {}
    containers = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    for container in containers:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason", ""))
        if reason in FAILING_WAITS:
            detail = str(waiting.get("message") or "") or _terminated(container)
            return PodFailure(name, str(container.get("name", "")), reason, detail[:500])
    for container in status.get("containerStatuses") or []:
        running = "running" in (container.get("state") or {})
        if running and not container.get("ready") and running_for >= READINESS_GRACE_SECONDS:
            return PodFailure(
                name,
                str(container.get("name", "")),
                NOT_READY,
                f"not Ready {running_for:.0f}s after it started",
            )
    return None


# The Deployment controller numbers each revision of the Pod template on the Deployment and on the
# ReplicaSet that runs it; the newest ReplicaSet carries the Deployment's number.
REVISION = "deployment.kubernetes.io/revision"


def owner(obj: Mapping[str, Any], kind: str) -> str | None:
    """The name of ``obj``'s controlling owner of ``kind``, if any."""
    for reference in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if reference.get("kind") == kind and reference.get("controller", True):
            return str(reference.get("name"))
    return None


def of_newest_revision(
    pod: Mapping[str, Any],
    replicaset: Mapping[str, Any] | None,
    deployment: Mapping[str, Any] | None,
) -> bool:
    """Whether ``pod`` runs its Deployment's current template, not a replaced one.

    While a new revision rolls out, the Pods of the one before (say, stuck in
    ``ImagePullBackOff``) linger until they are deleted; their reason is not the new revision's.
    ``replicaset``/``deployment``: the Pod's owners as read from the cluster (None: gone).
    """
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False  # being replaced or removed
    if owner(pod, "ReplicaSet") is None:
        return True  # not a Deployment's Pod: nothing to compare with
    if replicaset is None:
        return False
    if owner(replicaset, "Deployment") is None:
        return True
    if deployment is None:
        return False

    def revision(obj: Mapping[str, Any]) -> str | None:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        value = annotations.get(REVISION)
        return str(value) if value is not None else None

    return revision(replicaset) == revision(deployment)
