"""kopf wiring of the credentials operator (``fjord operator run --only credentials``).

Watches AppCredentials and the managed Secrets (server-side label selector, so the operator
never lists or caches other Secrets) with stateless ``on.event`` handlers: kopf writes no
annotations or finalizers of its own, and each event only hands the latest body to the shared
runtime (:mod:`fjord.operators.common.runtime`), whose work queues reconcile level-based.
"""

from __future__ import annotations

from typing import Any

import kopf

from fjord.operators.common.runner import OperatorContext
from fjord.operators.common.runtime import Runtime, finalizing, needs_reconcile
from fjord.operators.credentials import naming
from fjord.operators.credentials.setup import FINALIZER_QUEUE, NAME, start
from fjord.spec.infra import GROUP, VERSION, AppCredentialsSpec


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    runtime = Runtime(NAME, context)
    secret_deleting = finalizing(naming.FINALIZER)

    @kopf.on.startup(registry=registry)
    async def start_credentials(settings: kopf.OperatorSettings, **_: Any) -> None:
        selector = context.watch_secrets_of(naming.MANAGER)
        settings.watching.label_selectors["v1", "secrets"] = selector
        await start(runtime)

    @kopf.on.cleanup(registry=registry)
    async def stop_credentials(**_: Any) -> None:
        await runtime.stop()

    @kopf.on.event(GROUP, VERSION, AppCredentialsSpec.plural, registry=registry)
    def app_credentials(event: kopf.RawEvent, **_: Any) -> None:
        gone = runtime.route(NAME, event["type"], event["object"], wanted=needs_reconcile)
        if gone is not None:
            context.nudges.nudge(gone[0])  # its Secrets may be unused now

    @kopf.on.event("v1", "secrets", registry=registry)
    def managed_secret(event: kopf.RawEvent, **_: Any) -> None:
        secret = event["object"]
        runtime.route(FINALIZER_QUEUE, event["type"], secret, wanted=secret_deleting)
        if event["type"] == "DELETED" or (secret.get("metadata") or {}).get("deletionTimestamp"):
            # Ready promises the Secrets it names exist: its AppCredentials looks again (a no-op
            # for an old generation; for a current one: not Ready, then recreate it once gone).
            owner = naming.owner_of(secret)
            if owner is not None:
                runtime.requeue(NAME, owner)
