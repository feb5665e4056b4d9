"""Delivery outcomes per org, app and environment (the DORA four, as far as fjord sees them),
computed when asked from the deployments that finished in the last ``WINDOW``:

* deployment frequency: changes (deploy, rotate, promote, rollback) that became ready;
* lead time: from the **request** to every cluster ready, summed and counted. A deployment
  knows its commit (``source_revision``, ``Release.commit``) but fjord records no commit time,
  so the commit → request part (review, merge, CI) is not in it: this is fjord's own share;
* change failure rate: finished changes by outcome (``failed``, ``rolled_back``, ``aborted``
  against ``ready``; ``superseded`` ones are neither and are left out);
* time to restore: from the first of an app and environment's failed (or rolled back or
  aborted) changes to the next change there that became ready, summed and counted. A failure
  before the window whose fix is inside it is not counted.

Pure from the rows (:func:`outcomes`, :func:`rolled_up`, :func:`summary`) so each branch is a
unit test. Two queries over the window feed them (:func:`collect` for ``/metrics``,
:func:`app_outcomes` for one app): counts and summed lead times grouped in SQL, and the
failures with the next ready change after each: a row per failure, none per ready change.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from fjord.control import catalog, states
from fjord.control.models import App, Deployment, Environment, Org, UtcDateTime, utcnow
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
class Group:
    """Changes of one app and environment that ended in one ``state``: how many, and their
    request → finish times added up (one row of the grouped query)."""

    key: AppKey
    state: str
    count: int
    seconds: float


@dataclass(frozen=True)
class Failure:
    """A change that failed, was rolled back or aborted, and when the next change of the same
    app and environment became ready after it (``None``: none has yet)."""

    key: AppKey
    finished_at: dt.datetime
    restored_at: dt.datetime | None


@dataclass
class Outcomes(Generic[K]):
    """Sums and counts per key (an app and environment, or rolled up): they add up across keys,
    as Prometheus' ``sum(…_sum) / sum(…_count)`` expects."""

    finished: Counter[tuple[K, str]] = field(default_factory=Counter)  # (key, outcome) → n
    lead_seconds: defaultdict[K, float] = field(default_factory=lambda: defaultdict(float))
    lead_count: Counter[K] = field(default_factory=Counter)
    restore_seconds: defaultdict[K, float] = field(default_factory=lambda: defaultdict(float))
    restore_count: Counter[K] = field(default_factory=Counter)


def outcomes(groups: Iterable[Group], failures: Iterable[Failure]) -> Outcomes[AppKey]:
    """Counts and lead times from the groups; restores from the failures. Failures that share
    the ready change after them are one outage: it is restored once, measured from the first of
    them (later failures do not move its start)."""
    found: Outcomes[AppKey] = Outcomes()
    for group in groups:
        found.finished[(group.key, group.state)] += group.count
        if group.state == states.READY:
            found.lead_seconds[group.key] += group.seconds
            found.lead_count[group.key] += group.count
    outage_start: dict[tuple[AppKey, dt.datetime], dt.datetime] = {}
    for failure in failures:
        if failure.restored_at is None:
            continue  # not restored (yet): a failure, but no time to restore
        outage = (failure.key, failure.restored_at)
        outage_start[outage] = min(
            outage_start.get(outage, failure.finished_at), failure.finished_at
        )
    for (key, restored_at), since in outage_start.items():
        found.restore_seconds[key] += (restored_at - since).total_seconds()
        found.restore_count[key] += 1
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


def _seconds(later: Any, earlier: Any, dialect: str) -> Any:
    """``later - earlier`` in seconds, in SQL (timestamps are stored as naive UTC)."""
    if dialect == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later) - func.extract("epoch", earlier)


def _in_window(*where: Any) -> tuple[Any, ...]:
    return (
        Deployment.kind.in_(CHANGES),
        Deployment.finished_at >= utcnow() - WINDOW,
        *where,
    )


def _named(query: Any, app_id: Any, environment_id: Any) -> Any:
    return (
        query.join(App, App.id == app_id)
        .join(Org, Org.id == App.org_id)
        .join(Environment, Environment.id == environment_id)
    )


async def _read(session: AsyncSession, dialect: str, *where: Any) -> Outcomes[AppKey]:
    """Two queries over the window, neither loading a row per deployment: the changes grouped
    by app, environment and outcome with their summed lead time (grouped by ids, named after:
    the names are joined to the few groups, not to every deployment), and the failures (rare)
    each with the finish of the next ready change of its app and environment."""
    lead = _seconds(Deployment.finished_at, Deployment.created_at, dialect)
    grouped = (
        select(
            Deployment.app_id,
            Deployment.environment_id,
            Deployment.state,
            func.count().label("n"),
            func.coalesce(func.sum(lead), 0.0).label("seconds"),
        )
        .where(*_in_window(Deployment.state.in_(OUTCOMES), *where))
        .group_by(Deployment.app_id, Deployment.environment_id, Deployment.state)
        .subquery()
    )
    groups = await session.execute(
        _named(
            select(
                Org.name,
                App.name,
                Environment.name,
                grouped.c.state,
                grouped.c.n,
                grouped.c.seconds,
            ),
            grouped.c.app_id,
            grouped.c.environment_id,
        )
    )
    later = aliased(Deployment)
    restored_at = (
        select(func.min(later.finished_at))
        .where(
            later.app_id == Deployment.app_id,
            later.environment_id == Deployment.environment_id,
            later.kind.in_(CHANGES),
            later.state == states.READY,
            later.finished_at > Deployment.finished_at,
        )
        .scalar_subquery()
    )
    failures = await session.execute(
        _named(
            select(
                Org.name,
                App.name,
                Environment.name,
                Deployment.finished_at,
                type_coerce(restored_at, UtcDateTime),
            ),
            Deployment.app_id,
            Deployment.environment_id,
        ).where(*_in_window(Deployment.state.in_(BAD), *where))
    )
    return outcomes(
        (Group((o, a, e), state, n, float(seconds)) for o, a, e, state, n, seconds in groups),
        (Failure((o, a, e), finished, restored) for o, a, e, finished, restored in failures),
    )


async def collect(plane: ControlPlane) -> Outcomes[tuple[str, str]]:
    """Every org's outcomes by org and environment, for ``/metrics`` (no app names there)."""
    async with plane.db.session() as session:
        found = await _read(session, plane.db.dialect)
    return rolled_up(found, lambda k: (k[0], k[2]))


async def app_outcomes(plane: ControlPlane, actor: Actor, full_name: str) -> OutcomesView:
    """One app's outcomes per environment (readers of the org may see them)."""
    org_name, app_name = catalog.split_app(full_name)
    actor.require(org_name)
    async with plane.db.session() as session:
        ref = await catalog.app(session, org_name, app_name)
        environments = [e.name for e in await catalog.environments(session)]
        found = await _read(session, plane.db.dialect, Deployment.app_id == ref.app.id)
    return summary(rolled_up(found, lambda k: k[2]), full_name, environments)
