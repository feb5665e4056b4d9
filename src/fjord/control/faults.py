"""Fault injection at step boundaries, for crash tests and drills (``FJORD_PIPELINE_FAULTS``).

With ``FJORD_PIPELINE_FAULTS=<dir>``, a file ``<dir>/<idempotency key>`` holding
``<step>:<phase>`` makes the first replica that reaches that point of that deployment kill
itself with SIGKILL: it renames the file first, so exactly one replica dies for each file.
Phases are the worker's (``before``, ``started``, ``ran``, ``ended``) plus ``during``: SIGKILL a
moment after the step started, while its work runs. Unset (production): no hook at all.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping
from pathlib import Path

from fjord.control.pipeline import Job
from fjord.control.worker import Hook

VARIABLE = "FJORD_PIPELINE_FAULTS"
DURING_DELAY = 0.01  # seconds after a step started that "during" strikes


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _take(plan: Path) -> str | None:
    """The planned point, if this process is the one that claims it."""
    try:
        point = plan.read_text().strip()
        plan.rename(plan.with_name(plan.name + ".fired"))
    except OSError:
        return None  # no plan, or another replica took it
    return point


def crash_hook(directory: Path) -> Hook:
    async def hook(job: Job, step: str, phase: str) -> None:
        if not job.idempotency_key:
            return
        plan = directory / job.idempotency_key
        try:
            wanted = plan.read_text().strip()
        except OSError:
            return
        planned_step, _, planned_phase = wanted.partition(":")
        if planned_step != step:
            return
        if planned_phase == phase and _take(plan):
            _die()
        if planned_phase == "during" and phase == "started" and _take(plan):
            asyncio.get_running_loop().call_later(DURING_DELAY, _die)

    return hook


def from_env(environ: Mapping[str, str] | None = None) -> Hook | None:
    env = os.environ if environ is None else environ
    directory = env.get(VARIABLE)
    return crash_hook(Path(directory)) if directory else None
