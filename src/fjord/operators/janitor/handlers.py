"""kopf wiring of the janitor (``fjord operator run --only janitor``): start and stop only.

The janitor watches nothing itself; its sweep loop (:mod:`fjord.operators.janitor.sweep`) runs
periodically and when the credentials operator nudges a namespace.
"""

from __future__ import annotations

from typing import Any

import kopf

from fjord.operators.common.runner import OperatorContext
from fjord.operators.common.runtime import Runtime
from fjord.operators.janitor.setup import NAME, start


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    runtime = Runtime(NAME, context)

    @kopf.on.startup(registry=registry)
    async def start_janitor(**_: Any) -> None:
        await start(runtime)

    @kopf.on.cleanup(registry=registry)
    async def stop_janitor(**_: Any) -> None:
        await runtime.stop()
