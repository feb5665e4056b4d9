"""Delivery outcomes per org, app and environment (the DORA four, as far as fjord sees them),
computed when asked from the deployments that finished in the last ``WINDOW``:

* deployment frequency: changes (deploy, rotate, promote, rollback) that became ready;
* lead time: from the **request** to every cluster ready, summed and counted. A deployment
  knows its commit (``source_revision``, ``Release.commit``) but fjord records no commit time,
  so the commit → request part (review, merge, CI) is not in it: this is fjord's own share;
* change failure rate: finished changes by outcome (``failed``, ``rolled_back``, ``aborted``
  against ``ready``; ``superseded`` ones are neither and are left out);
* time to restore: from the first change of an app and environment that failed (or was rolled
  back or aborted) to the next one there that became ready, summed and counted. A failure
  before the window whose fix is inside it is not counted.

Pure from the rows (:func:`outcomes`, :func:`rolled_up`, :func:`summary`) so each branch is a
unit test; one query over the window feeds them (:func:`collect` for ``/metrics``,
:func:`app_outcomes` for one app).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fjord.control import catalog, states
from fjord.control.models import App, Deployment, Environment, Org, utcnow
from fjord.control.plane import ControlPlane
from fjord.control.roles import Actor
from fjord.control.views import EnvironmentOutcomesView, OutcomesView

WINDOW = dt.timedelta(days=90)
CHANGES = (states.DEPLOY, states.ROTATE, states.PROMOTE, states.ROLLBACK)
BAD = (states.FAILED, states.ROLLED_BACK, states.ABORTED)
OUTCOMES = (states.READY, *BAD)
AppKey = tuple[str, str, str]  # org, app, environment
K = TypeVar("K", bound=Hashable)
L = TypeVar("L", bound=Hashable)


@dataclass(frozen=True)
class Finished:
    """One finished change: whose, how it ended, when it was asked for and when it ended."""

    key: AppKey
    state: str
    created_at: dt.datetime
    finished_at: dt.datetime


@dataclass
class Outcomes(Generic[K]):
    """Sums and counts per key (an app and environment, or rolled up): they add up across keys,
    as Prometheus' ``sum(…_sum) / sum(…_count)`` expects."""

    finished: Counter[tuple[K, str]] = field(default_factory=Counter)  # (key, outcome) → n
    lead_seconds: defaultdict[K, float] = field(default_factory=lambda: defaultdict(float))
    lead_count: Counter[K] = field(default_factory=Counter)
    restore_seconds: defaultdict[K, float] = field(default_factory=lambda: defaultdict(float))
    restore_count: Counter[K] = field(default_factory=Counter)


def outcomes(rows: Iterable[Finished]) -> Outcomes[AppKey]:
    """``rows`` in finishing order. A restore is measured per app and environment: from the
    first failure after a ready change (later failures do not move it) to the next ready one."""
    found: Outcomes[AppKey] = Outcomes()
    broken_since: dict[AppKey, dt.datetime] = {}
    for row in rows:
        found.finished[(row.key, row.state)] += 1
        if row.state == states.READY:
            found.lead_seconds[row.key] += (row.finished_at - row.created_at).total_seconds()
            found.lead_count[row.key] += 1
            since = broken_since.pop(row.key, None)
            if since is not None:
                found.restore_seconds[row.key] += (row.finished_at - since).total_seconds()
                found.restore_count[row.key] += 1
        elif row.state in BAD:
            broken_since.setdefault(row.key, row.finished_at)
    return found


def rolled_up(found: Outcomes[K], key: Callable[[K], L]) -> Outcomes[L]:
    """The same sums and counts under a coarser key (``/metrics``: org and environment only)."""
    total: Outcomes[L] = Outcomes()
    for (k, state), n in found.finished.items():
        total.finished[(key(k), state)] += n
    for k, n in found.lead_count.items():
        total.lead_seconds[key(k)] += found.lead_seconds[k]
        total.lead_count[key(k)] += n
    for k, n in found.restore_count.items():
        total.restore_seconds[key(k)] += found.restore_seconds[k]
        total.restore_count[key(k)] += n
    return total


def _mean(total: float, count: int) -> float | None:
    return total / count if count else None


def summary(
    found: Outcomes[str], app: str, environments: Iterable[str], window: dt.timedelta = WINDOW
) -> OutcomesView:
    """One app's outcomes keyed by environment, every environment listed (zeros where none)."""
    days = window / dt.timedelta(days=1)
    rows = []
    for env in environments:
        by_state = {state: found.finished[(env, state)] for state in OUTCOMES}
        finished = sum(by_state.values())
        rows.append(
            EnvironmentOutcomesView(
                environment=env,
                ready=by_state[states.READY],
                failed=by_state[states.FAILED],
                rolled_back=by_state[states.ROLLED_BACK],
                aborted=by_state[states.ABORTED],
                deployments_per_day=by_state[states.READY] / days,
                change_failure_rate=_mean(finished - by_state[states.READY], finished),
                lead_time_seconds=_mean(found.lead_seconds[env], found.lead_count[env]),
                time_to_restore_seconds=_mean(found.restore_seconds[env], found.restore_count[env]),
                restores=found.restore_count[env],
            )
        )
    return OutcomesView(app=app, window_days=round(days), environments=rows)


async def _finished(session: AsyncSession, *where: Any) -> list[Finished]:
    """The one query: changes that finished in the window, in finishing order."""
    rows = await session.execute(
        select(
            Org.name,
            App.name,
            Environment.name,
            Deployment.state,
            Deployment.created_at,
            Deployment.finished_at,
        )
        .join(App, App.id == Deployment.app_id)
        .join(Org, Org.id == App.org_id)
        .join(Environment, Environment.id == Deployment.environment_id)
        .where(
            Deployment.kind.in_(CHANGES),
            Deployment.state.in_(OUTCOMES),
            Deployment.finished_at >= utcnow() - WINDOW,
            *where,
        )
        .order_by(Deployment.finished_at, Deployment.id)
    )
    return [
        Finished((org, app, env), state, created, finished)
        for org, app, env, state, created, finished in rows
        if finished is not None
    ]


async def collect(plane: ControlPlane) -> Outcomes[tuple[str, str]]:
    """Every org's outcomes by org and environment, for ``/metrics`` (no app names there)."""
    async with plane.db.session() as session:
        rows = await _finished(session)
    return rolled_up(outcomes(rows), lambda k: (k[0], k[2]))


async def app_outcomes(plane: ControlPlane, actor: Actor, full_name: str) -> OutcomesView:
    """One app's outcomes per environment (readers of the org may see them)."""
    org_name, app_name = catalog.split_app(full_name)
    actor.require(org_name)
    async with plane.db.session() as session:
        ref = await catalog.app(session, org_name, app_name)
        environments = [e.name for e in await catalog.environments(session)]
        rows = await _finished(session, Deployment.app_id == ref.app.id)
    return summary(rolled_up(outcomes(rows), lambda k: k[2]), full_name, environments)
