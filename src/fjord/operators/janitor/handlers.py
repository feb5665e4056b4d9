"""kopf wiring of the janitor (``fjord operator run --only janitor``).

A background task sweeps every namespace with managed Secrets each ``janitor.interval`` seconds,
and sooner the namespaces the credentials operator nudged after its reconciles (a nudge never
blocks a reconcile). A sweep lists, per namespace, the managed Secrets and their possible users,
then deletes what :func:`~fjord.operators.janitor.usage.to_delete` names. The deletion is all it
does: the Secret's finalizer (credentials operator) removes the external user first.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import kopf
import structlog

from fjord.kube import Kube, KubeError
from fjord.operators.common import events
from fjord.operators.common.kubeapi import CountingKube
from fjord.operators.common.runner import OperatorContext
from fjord.operators.credentials.handlers import SELECTOR, _incluster
from fjord.operators.janitor.usage import to_delete
from fjord.spec.infra import API_VERSION

NAME = "janitor"
USERS = (
    ("v1", "Pod"),
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    (API_VERSION, "AppCredentials"),
)

log = structlog.get_logger("fjord.operators.janitor")


class Janitor:
    def __init__(
        self, kube: CountingKube, context: OperatorContext, interval: float, grace: float = 60.0
    ) -> None:
        self._grace = grace
        self._kube = kube
        self._context = context
        self._interval = interval

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_full = loop.time()
        while True:
            timeout = max(0.0, next_full - loop.time())
            nudged = await self._context.nudges.take(timeout)
            try:
                if loop.time() >= next_full:
                    next_full = loop.time() + self._interval
                    await self.sweep(None)
                elif nudged:
                    await asyncio.sleep(0.5)  # let a burst of reconciles settle into one sweep
                    nudged |= await self._context.nudges.take(0)
                    for namespace in sorted(nudged):
                        await self.sweep(namespace)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next sweep tries again; nothing depends on this one
                log.warning("sweep_failed", error=str(exc))

    async def sweep(self, namespace: str | None) -> int:
        """Sweep one namespace, or (None) every watched namespace; returns Secrets deleted."""
        scopes: list[str | None] = (
            [namespace] if namespace else [*self._context.namespaces] or [None]
        )
        deleted = 0
        for scope in scopes:
            secrets = await self._kube.items("v1", "Secret", scope, label_selector=SELECTOR)
            by_ns: dict[str, list[dict[str, Any]]] = {}
            for secret in secrets:
                by_ns.setdefault(secret["metadata"]["namespace"], []).append(secret)
            for ns, found in sorted(by_ns.items()):
                deleted += await self._sweep_namespace(ns, found)
        return deleted

    async def _sweep_namespace(self, namespace: str, secrets: list[dict[str, Any]]) -> int:
        users: list[dict[str, Any]] = []
        for api_version, kind in USERS:
            for item in await self._kube.items(api_version, kind, namespace):
                users.append({**item, "kind": kind})
        doomed = to_delete(secrets, users, now=datetime.now(UTC), grace=self._grace)
        for name in doomed:
            with contextlib.suppress(KubeError):
                if await self._kube.delete("v1", "Secret", name, namespace):
                    log.info("secret_deleted", namespace=namespace, secret=name)
                    await events.post(
                        self._kube.kube,
                        {
                            "apiVersion": "v1",
                            "kind": "Secret",
                            "metadata": {"namespace": namespace, "name": name},
                        },
                        events.NORMAL,
                        "Unused",
                        "deleted: nothing uses it",
                        controller="fjord.dev/janitor",
                        action="Delete",
                    )
        return len(doomed)


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    interval = float(context.option("janitor.interval", "900") or 900)
    grace = float(context.option("janitor.grace", "60") or 60)
    tasks: list[asyncio.Task[None]] = []
    sessions: list[Kube] = []

    @kopf.on.startup(registry=registry)
    async def start(**_: Any) -> None:
        kube = (
            await Kube.connect(str(context.kubeconfig))
            if context.kubeconfig
            else await _incluster()
        )
        sessions.append(kube)
        janitor = Janitor(CountingKube(kube, context.metrics, NAME), context, interval, grace)
        tasks.append(asyncio.create_task(janitor.run(), name="janitor"))

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for kube in sessions:
            await kube.close()
