"""One janitor sweep: observe a namespace → plan (pure) → delete in order, and the sweep loop.

A background task sweeps every namespace with managed Secrets each ``interval`` seconds, and
sooner the namespaces the credentials operator nudged after its reconciles (a nudge never blocks
a reconcile). Deleting is all the janitor does: the Secret's finalizer (credentials operator)
removes the external user first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from fjord.kube import KubeError
from fjord.operators.common import events
from fjord.operators.common.kubeapi import CountingKube
from fjord.operators.common.nudges import Nudges
from fjord.operators.credentials.setup import SELECTOR
from fjord.operators.janitor.plan import DeleteSecret, plan
from fjord.spec.infra import API_VERSION, AppCredentialsSpec

CONTROLLER = "fjord.dev/janitor"
# What may use a managed Secret: Pods, the pod templates of workloads, and AppCredentials.
USERS = (
    ("v1", "Pod"),
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    (API_VERSION, AppCredentialsSpec.kind),
)
SETTLE = 0.5  # seconds: let a burst of reconciles' nudges collapse into one sweep

log = structlog.get_logger("fjord.operators.janitor")


@dataclass(frozen=True)
class Observed:
    """One namespace: its managed Secrets and everything that could use them."""

    namespace: str
    secrets: list[dict[str, Any]]
    users: list[dict[str, Any]]


class Janitor:
    def __init__(
        self,
        kube: CountingKube,
        nudges: Nudges,
        namespaces: Sequence[str],
        *,
        interval: float,
        grace: float = 60.0,
    ) -> None:
        self._kube = kube
        self._nudges = nudges
        self._namespaces = tuple(namespaces)
        self._interval = interval
        self._grace = grace

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_full = loop.time()
        while True:
            nudged = await self._nudges.take(max(0.0, next_full - loop.time()))
            try:
                if loop.time() >= next_full:
                    next_full = loop.time() + self._interval
                    await self.sweep(None)
                elif nudged:
                    await asyncio.sleep(SETTLE)
                    nudged |= await self._nudges.take(0)
                    for namespace in sorted(nudged):
                        await self.sweep(namespace)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next sweep tries again; nothing depends on this one
                log.warning("sweep_failed", error=str(exc))

    async def sweep(self, namespace: str | None) -> int:
        """Sweep one namespace, or (None) every watched namespace; returns Secrets deleted."""
        deleted = 0
        for observed in await self._observe(namespace):
            commands = plan(
                observed.secrets, observed.users, now=datetime.now(UTC), grace=self._grace
            )
            deleted += await self._act(observed.namespace, commands)
        return deleted

    async def _observe(self, namespace: str | None) -> list[Observed]:
        """Per namespace with managed Secrets: those Secrets and their possible users."""
        scopes: list[str | None] = [namespace] if namespace else [*self._namespaces] or [None]
        by_ns: dict[str, list[dict[str, Any]]] = {}
        for scope in scopes:
            for secret in await self._kube.items("v1", "Secret", scope, label_selector=SELECTOR):
                by_ns.setdefault(secret["metadata"]["namespace"], []).append(secret)
        found = []
        for ns, secrets in sorted(by_ns.items()):
            users: list[dict[str, Any]] = []
            for api_version, kind in USERS:
                for item in await self._kube.items(api_version, kind, ns):
                    users.append({**item, "kind": kind})
            found.append(Observed(ns, secrets, users))
        return found

    async def _act(self, namespace: str, commands: list[DeleteSecret]) -> int:
        deleted = 0
        for command in commands:
            with contextlib.suppress(KubeError):  # gone or refused: the next sweep looks again
                if await self._kube.delete("v1", "Secret", command.name, namespace):
                    deleted += 1
                    log.info("secret_deleted", namespace=namespace, secret=command.name)
                    await events.post(
                        self._kube.kube,
                        _secret_ref(namespace, command.name),
                        events.NORMAL,
                        command.reason,
                        command.message,
                        controller=CONTROLLER,
                        action="Delete",
                    )
        return deleted


def _secret_ref(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"namespace": namespace, "name": name},
    }
