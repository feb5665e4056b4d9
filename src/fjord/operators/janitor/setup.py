"""The janitor's parts, built at startup into the shared runtime: one background sweep loop."""

from __future__ import annotations

from fjord.operators.common.runtime import Runtime
from fjord.operators.janitor.sweep import Janitor

NAME = "janitor"


async def start(runtime: Runtime) -> None:
    context = runtime.context
    janitor = Janitor(
        await runtime.connect(),
        context.nudges,
        context.namespaces,
        interval=float(context.option("janitor.interval", "900") or 900),
        grace=float(context.option("janitor.grace", "60") or 60),
    )
    runtime.task(janitor.run(), name=NAME)
