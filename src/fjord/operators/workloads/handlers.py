"""kopf wiring of the workload reporter (``fjord operator run --only workloads``).

When an app's Pod cannot run (a waiting reason that will not resolve, or the kubelet's repeated
"Readiness probe failed" events), it reports the Pod's reason as an error event of the app's
Kustomization to the cluster's Flux notification-controller, for the revision Flux is applying.
Only Pods of the Deployment's newest ReplicaSet count: a Pod of the revision being replaced (still
in ``ImagePullBackOff`` from the last failed deploy) says nothing about the new one.
The cluster's Alert forwards it to fjord like any Flux event (signed per cluster), so the
deployment fails with the Pod's reason instead of Flux's bare ``status: 'InProgress'``.

Option ``workloads.events-url``: the notification-controller's event address (in a cluster
``http://notification-controller.flux-system.svc.cluster.local./``); without it nothing is sent.
"""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

import httpx2
import kopf
import structlog

from fjord.kube import Kube, KubeError
from fjord.operators.common.runner import OperatorContext
from fjord.operators.workloads.health import (
    NOT_READY,
    PodFailure,
    of_newest_revision,
    owner,
    pod_failure,
)

NAME = "workloads"
APP_LABEL = "app.kubernetes.io/name"
ORG_LABEL = "fjord.dev/org"
KUSTOMIZATION = ("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
# Probe failures before readiness counts as never passing (three minutes at a 5 s period, as
# health.READINESS_GRACE_SECONDS): a slow start on a loaded machine is not a failure.
READINESS_FAILURES = 36

log = structlog.get_logger("fjord.operators.workloads")


class Reporter:
    def __init__(self, kube: Kube, events_url: str) -> None:
        self._kube = kube
        self._url = events_url
        self._http = httpx2.AsyncClient(timeout=10)
        self._sent: set[tuple[str, str, str, str]] = set()

    async def close(self) -> None:
        await self._http.aclose()

    async def report(self, namespace: str, app: str, failure: PodFailure) -> None:
        """Report ``failure`` against the revision Flux is rolling out, once Flux applied it."""
        kustomization = await self._kube.get(*KUSTOMIZATION, app, namespace)
        if kustomization is None:
            return  # not deployed by fjord
        status = kustomization.get("status") or {}
        revision = str(status.get("lastAttemptedRevision") or "")
        if not revision or (revision == status.get("lastAppliedRevision") and _ready(status)):
            return  # nothing being rolled out: a Pod of a healthy release restarting
        if not _applied(status, revision):
            # Flux has begun this revision but not applied it yet: the failing Pod is still the
            # previous release's (say, its image that cannot be pulled), not this one's. A later
            # status change of the Pod asks again.
            return
        key = (namespace, app, revision, failure.reason)
        if key in self._sent:
            return
        event = {
            "involvedObject": {
                "apiVersion": KUSTOMIZATION[0],
                "kind": KUSTOMIZATION[1],
                "namespace": namespace,
                "name": app,
                "uid": (kustomization.get("metadata") or {}).get("uid", ""),
            },
            "severity": "error",
            "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "reason": "PodFailed",
            "message": failure.message,
            # Prefixed with the involved object's API group: notification-controller drops
            # every other metadata key before forwarding (its cleanupMetadata).
            "metadata": {f"{KUSTOMIZATION[0].split('/')[0]}/revision": revision},
            "reportingController": "fjord-workloads",
            "reportingInstance": socket.gethostname(),
        }
        try:
            response = await self._http.post(self._url, json=event)
        except httpx2.HTTPError as exc:
            log.warning("event not delivered", error=str(exc), app=f"{namespace}/{app}")
            return
        if response.status_code < 300:
            self._sent.add(key)
            log.info("pod failure reported", app=f"{namespace}/{app}", message=failure.message)


def _applied(status: dict[str, Any], revision: str) -> bool:
    """Whether Flux has applied ``revision`` (kustomize-controller says "Running health checks
    for revision …" once it has, and keeps a failed health check's Ready=False after)."""
    for condition in status.get("conditions") or []:
        message = str(condition.get("message") or "")
        if condition.get("type") in ("Reconciling", "Healthy") and message.startswith(
            f"Running health checks for revision {revision} "
        ):
            return True
        if condition.get("type") == "Ready" and condition.get("reason") == "HealthCheckFailed":
            return True
    return False


def _ready(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _since(started: str | None) -> float:
    if not started:
        return 0.0
    at = dt.datetime.fromisoformat(started.replace("Z", "+00:00"))
    return (dt.datetime.now(dt.UTC) - at).total_seconds()


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    events_url = context.option("workloads.events-url")
    reporters: list[Reporter] = []
    sessions: list[Kube] = []

    @kopf.on.startup(registry=registry)
    async def start(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.watching.label_selectors["v1", "pods"] = ORG_LABEL
        kube = await Kube.connect(context.kubeconfig)
        sessions.append(kube)
        if events_url:
            reporters.append(Reporter(kube, events_url))

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        for reporter in reporters:
            await reporter.close()
        for kube in sessions:
            await kube.close()

    @kopf.on.event("v1", "pods", labels={ORG_LABEL: kopf.PRESENT}, registry=registry)
    async def pod(event: kopf.RawEvent, **_: Any) -> None:
        body: dict[str, Any] = dict(event["object"])
        meta = body.get("metadata") or {}
        app = (meta.get("labels") or {}).get(APP_LABEL)
        if not reporters or event["type"] == "DELETED" or not app:
            return
        started = [
            ((c.get("state") or {}).get("running") or {}).get("startedAt")
            for c in (body.get("status") or {}).get("containerStatuses") or []
        ]
        failure = pod_failure(body, running_for=min((_since(s) for s in started if s), default=0))
        if failure is not None and await _of_newest_revision(sessions[0], body):
            await _report(reporters[0], str(meta.get("namespace")), str(app), failure)

    @kopf.on.event("v1", "events", registry=registry)
    async def probe(event: kopf.RawEvent, **_: Any) -> None:
        body: dict[str, Any] = dict(event["object"])
        message = str(body.get("message", ""))
        involved = body.get("involvedObject") or {}
        if (
            not reporters
            or body.get("reason") != "Unhealthy"
            or not message.startswith("Readiness probe failed")
            or int(body.get("count") or 1) < READINESS_FAILURES
            or involved.get("kind") != "Pod"
        ):
            return
        namespace, name = str(involved.get("namespace")), str(involved.get("name"))
        try:
            found = await sessions[0].get("v1", "Pod", name, namespace)
        except KubeError:
            return
        app = ((found or {}).get("metadata", {}).get("labels") or {}).get(APP_LABEL)
        if found is None or not app or not await _of_newest_revision(sessions[0], found):
            return
        container = str(involved.get("fieldPath", "")).removeprefix("spec.containers{").rstrip("}")
        failure = PodFailure(name, container, NOT_READY, message[:500])
        await _report(reporters[0], namespace, str(app), failure)


async def _of_newest_revision(kube: Kube, pod: dict[str, Any]) -> bool:
    """Whether the failing ``pod`` is of the revision being rolled out (reads its owners)."""
    namespace = str((pod.get("metadata") or {}).get("namespace"))
    try:
        name = owner(pod, "ReplicaSet")
        replicaset = await kube.get("apps/v1", "ReplicaSet", name, namespace) if name else None
        name = owner(replicaset or {}, "Deployment")
        deployment = await kube.get("apps/v1", "Deployment", name, namespace) if name else None
    except KubeError as exc:
        log.warning("could not read the Pod's owners", error=str(exc))
        return False
    if deployment is not None:
        generation = (deployment.get("metadata") or {}).get("generation") or 0
        if ((deployment.get("status") or {}).get("observedGeneration") or 0) < generation:
            return False  # a new template not yet seen by its controller: revisions are stale
    return of_newest_revision(pod, replicaset, deployment)


async def _report(reporter: Reporter, namespace: str, app: str, failure: PodFailure) -> None:
    try:
        await reporter.report(namespace, app, failure)
    except KubeError as exc:
        log.warning("could not read the app's Kustomization", error=str(exc))
