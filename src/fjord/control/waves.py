"""Rollouts in waves, as pure functions: which clusters each wave moves, and what a wave step
does next given what the clusters report and the time.

No database, no store, no clock of its own: ``rollouts.py`` observes (the pinned plan, the
clusters' verdicts, now), asks :func:`decide` and carries the answer out, so every branch of the
health gate, soak, failure budget and timeout is a unit test (``tests/unit/test_rollout_waves.py``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fjord.control import states
from fjord.spec.platform import Rollout

# A rollout's own states (``rollouts.state``); the deployment's state says the same in its terms.
RUNNING = "running"
HALTED = "halted"
ROLLING_BACK = "rolling_back"
ROLLED_BACK = "rolled_back"
ABORTED = "aborted"
DONE = "done"


@dataclass(frozen=True)
class ClusterInfo:
    id: str
    name: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class PlannedWave:
    clusters: tuple[str, ...]  # cluster ids
    soak_seconds: int


def assign(rollout: Rollout, clusters: Sequence[ClusterInfo]) -> list[PlannedWave]:
    """The waves of one org's clusters in an environment, in order.

    Each wave takes, from the clusters no earlier wave took (in name order), those it names,
    those whose labels include its ``matchLabels``, or its ``percent`` of all the clusters
    (rounded up, at least one). A wave that selects nothing here is left out; clusters no wave
    selected form a last wave (soaked like the others), so every cluster gets the release.
    """
    remaining = sorted(clusters, key=lambda c: c.name)
    total = len(remaining)
    planned: list[PlannedWave] = []
    for wave in rollout.waves:
        if wave.clusters:
            chosen = [c for c in remaining if c.name in wave.clusters]
        elif wave.match_labels:
            chosen = [
                c
                for c in remaining
                if all(c.labels.get(k) == v for k, v in wave.match_labels.items())
            ]
        else:
            assert wave.percent is not None
            chosen = remaining[: max(1, math.ceil(total * wave.percent / 100))]
        remaining = [c for c in remaining if c not in chosen]
        if chosen:
            soak = rollout.soak_seconds if wave.soak_seconds is None else wave.soak_seconds
            planned.append(PlannedWave(tuple(c.id for c in chosen), soak))
    if remaining:
        planned.append(PlannedWave(tuple(c.id for c in remaining), rollout.soak_seconds))
    return planned


def all_at_once(clusters: Sequence[ClusterInfo]) -> list[PlannedWave]:
    """A rollback's plan: every cluster in one wave, no soak (getting back is urgent)."""
    ids = tuple(c.id for c in sorted(clusters, key=lambda c: c.name))
    return [PlannedWave(ids, 0)] if ids else []


# ---- one wave step: what next ----------------------------------------------------------------


@dataclass(frozen=True)
class WaveState:
    """What is recorded about the wave in progress."""

    started_at: dt.datetime | None  # its clusters' tags moved (None: not yet)
    ready_at: dt.datetime | None  # the gate passed (None: not yet); soaking since
    soak_seconds: int
    deadline_seconds: float  # how long the gate may take from the start
    failure_budget: int  # clusters that may still fail (the rollout's budget minus failures)


@dataclass(frozen=True)
class Start:
    """Move the wave's clusters' tags and nudge their Receivers."""


@dataclass(frozen=True)
class CheckAt:
    """Nothing to do until ``at``; ``ready_at`` set: the gate passed now, record it."""

    at: dt.datetime
    ready_at: dt.datetime | None = None
    failed: tuple[str, ...] = ()  # clusters that failed within the budget: record them


@dataclass(frozen=True)
class Halt:
    message: str
    failed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finish:
    """The wave is Ready and soaked: the step is done (``ready_at``: record it, no soak)."""

    failed: tuple[str, ...] = ()
    ready_at: dt.datetime | None = None


Decision = Start | CheckAt | Halt | Finish


@dataclass(frozen=True)
class Verdict:
    state: str  # states.PENDING | READY | FAILED
    message: str | None


def decide(
    wave: WaveState,
    verdicts: Mapping[str, Verdict],
    now: dt.datetime,
    check_seconds: float,
    *,
    counted: Sequence[str] = (),
) -> Decision:
    """The next move of a wave step.

    ``verdicts``: every cluster that has the release so far (earlier waves too: one failing
    during a later wave's soak halts as well); ``counted``: clusters whose failure already used
    the budget (they neither block nor count again).
    """
    if wave.started_at is None:
        return Start()
    failed = tuple(
        sorted(c for c, v in verdicts.items() if v.state == states.FAILED and c not in counted)
    )
    if len(failed) > wave.failure_budget:
        first = failed[0]
        return Halt(f"{first}: {verdicts[first].message or 'failed'}", failed)
    waiting = [
        c for c, v in verdicts.items() if v.state != states.READY and c not in (*counted, *failed)
    ]
    later = now + dt.timedelta(seconds=check_seconds)
    if waiting:
        if now >= wave.started_at + dt.timedelta(seconds=wave.deadline_seconds):
            detail = "; ".join(f"{c}: {verdicts[c].message or 'no report'}" for c in waiting)
            return Halt(
                f"timed out after {wave.deadline_seconds:.0f}s waiting for {detail}", failed
            )
        return CheckAt(later, failed=failed)
    ready_at = wave.ready_at or now
    soaked = ready_at + dt.timedelta(seconds=wave.soak_seconds)
    if now >= soaked:
        return Finish(failed, None if wave.ready_at else ready_at)
    # Keep watching while it soaks (a cluster failing now halts), and wake exactly at the end.
    return CheckAt(min(later, soaked), None if wave.ready_at else ready_at, failed)
