"""kopf wiring of the Maskinporten operator: framework concerns only.

Watch events of ``MaskinportenClient`` objects and of the Secrets we wrote are handed to the
shared runtime (:mod:`fjord.operators.common.runtime`), which decides whether to enqueue;
reconciles run in its work queue, which owns retries, backoff and requeues. The finalizer is
ours (``fjord.dev/maskinporten``), added and removed by the reconcile itself, so deletion is
just another level-based pass.
"""

from __future__ import annotations

from typing import Any

import kopf

from fjord.operators.common.runner import OperatorContext
from fjord.operators.common.runtime import Runtime, needs_reconcile
from fjord.operators.maskinporten.config import OperatorConfig
from fjord.operators.maskinporten.model import MANAGED_BY_VALUE, OWNER_LABEL
from fjord.operators.maskinporten.setup import NAME, drifted_secret_owner, start
from fjord.spec.infra import GROUP, VERSION, MaskinportenClientSpec


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    """Add the Maskinporten operator's handlers to ``registry``."""
    config = OperatorConfig.from_sources(context.options)  # fail fast, before connecting
    runtime = Runtime(NAME, context)

    @kopf.on.startup(registry=registry)
    async def start_maskinporten(settings: kopf.OperatorSettings, **_: Any) -> None:
        selector = context.watch_secrets_of(MANAGED_BY_VALUE)
        settings.watching.label_selectors["v1", "secrets"] = selector
        await start(runtime, config)

    @kopf.on.cleanup(registry=registry)
    async def stop_maskinporten(**_: Any) -> None:
        await runtime.stop()

    @kopf.on.event(GROUP, VERSION, MaskinportenClientSpec.plural, registry=registry)
    def maskinporten_client_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        runtime.route(NAME, type, body, wanted=needs_reconcile)

    @kopf.on.event("v1", "secrets", labels={OWNER_LABEL: kopf.PRESENT}, registry=registry)
    def maskinporten_secret_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        owner = drifted_secret_owner(type, body)
        if owner is not None:
            runtime.requeue(NAME, owner)
