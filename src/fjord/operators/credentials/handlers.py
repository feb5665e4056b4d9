"""kopf wiring of the credentials operator (``fjord operator run --only credentials``).

Watches AppCredentials and the managed Secrets (server-side label selector, so the operator
never lists or caches other Secrets) with stateless ``on.event`` handlers: kopf writes no
annotations or finalizers of its own, and each event only hands the latest body to a
:class:`~fjord.operators.common.controller.Controller`, which reconciles level-based.
"""

from __future__ import annotations

from typing import Any

import kopf

from fjord.kube import Kube
from fjord.operators.common.controller import Controller
from fjord.operators.common.kubeapi import CountingKube
from fjord.operators.common.runner import OperatorContext
from fjord.operators.credentials import naming
from fjord.operators.credentials.admin import AdminSource
from fjord.operators.credentials.finalizer import SecretFinalizer
from fjord.operators.credentials.reconcile import CredentialsReconciler
from fjord.operators.credentials.services.base import ServiceHandler
from fjord.operators.credentials.services.postgresql import PostgreSQLHandler
from fjord.operators.credentials.services.redis import RedisHandler
from fjord.spec.infra import GROUP, VERSION

NAME = "credentials"
SELECTOR = f"{naming.MANAGED_BY}={naming.MANAGER}"


class _Runtime:
    """What the handlers share; created at startup inside the operator's event loop."""

    def __init__(self) -> None:
        self.kube: Kube | None = None
        self.handlers: dict[str, ServiceHandler] = {}
        self.credentials: Controller | None = None
        self.secrets: Controller | None = None


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    runtime = _Runtime()
    resync = float(context.option("credentials.resync", "3600") or 3600)
    workers = int(context.option("credentials.workers", "16") or 16)

    @kopf.on.startup(registry=registry)
    async def start(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.watching.label_selectors["v1", "secrets"] = SELECTOR
        kube = (
            await Kube.connect(_kubeconfig(context)) if context.kubeconfig else await _incluster()
        )
        runtime.kube = kube
        counted = CountingKube(kube, context.metrics, NAME)
        admin = AdminSource(counted, context.option("credentials.admin-secret"))
        runtime.handlers = {
            "postgresql": PostgreSQLHandler(admin, pool_size=max(2, workers // 2)),
            "redis": RedisHandler(admin),
        }
        reconciler = CredentialsReconciler(counted, runtime.handlers, context.nudges, resync=resync)
        runtime.credentials = Controller(
            NAME, reconciler, context.metrics, workers=workers, permanent_retry=resync
        )
        runtime.secrets = Controller(
            f"{NAME}-finalizer",
            SecretFinalizer(counted, runtime.handlers),
            context.metrics,
            workers=max(2, workers // 4),
        )
        runtime.credentials.start()
        runtime.secrets.start()

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        for controller in (runtime.credentials, runtime.secrets):
            if controller is not None:
                await controller.stop()
        for handler in runtime.handlers.values():
            await handler.close()
        if runtime.kube is not None:
            await runtime.kube.close()

    @kopf.on.event(GROUP, VERSION, "appcredentials", registry=registry)
    def app_credentials(event: kopf.RawEvent, **_: Any) -> None:
        body: dict[str, Any] = dict(event["object"])
        meta: dict[str, Any] = body.get("metadata") or {}
        key = (meta.get("namespace"), meta.get("name"))
        if runtime.credentials is None:
            return
        if event["type"] == "DELETED":
            runtime.credentials.forget(key)
            context.nudges.nudge(str(meta.get("namespace")))
        elif needs_reconcile(runtime.credentials.latest(key), body):
            runtime.credentials.enqueue(key, body)
        else:  # our own status write coming back: no new work, and a backoff stays a backoff
            runtime.credentials.remember(key, body)

    @kopf.on.event("v1", "secrets", registry=registry)
    def managed_secret(event: kopf.RawEvent, **_: Any) -> None:
        body: dict[str, Any] = dict(event["object"])
        meta: dict[str, Any] = body.get("metadata") or {}
        key = (meta.get("namespace"), meta.get("name"))
        if runtime.secrets is None:
            return
        if event["type"] == "DELETED":
            runtime.secrets.forget(key)
        elif meta.get("deletionTimestamp") and naming.FINALIZER in (meta.get("finalizers") or []):
            runtime.secrets.enqueue(key, body)


def needs_reconcile(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Whether a watch event asks for a reconcile (aivenator's predicates).

    Yes for a new object, a spec change (generation), labels, annotations (``fjord.dev/rotate``),
    deletion, and a status that is not ours for this generation (cleared or edited: resync).
    No when only the status changed, i.e. the event of the operator's own status write.
    """
    if old is None:
        return True
    before, after = old.get("metadata") or {}, new.get("metadata") or {}
    for field in ("generation", "labels", "annotations", "deletionTimestamp"):
        if before.get(field) != after.get(field):
            return True
    status = new.get("status") or {}
    return status.get("observedGeneration") != after.get("generation") or not status.get(
        "conditions"
    )


def _kubeconfig(context: OperatorContext) -> str:
    return str(context.kubeconfig)


async def _incluster() -> Kube:
    from kubernetes_asyncio import config as k8s_config
    from kubernetes_asyncio.client import ApiClient
    from kubernetes_asyncio.dynamic import DynamicClient

    k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
    api = ApiClient()
    return Kube(api, await DynamicClient(api))
