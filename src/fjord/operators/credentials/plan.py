"""The pure heart of a reconcile: what to do, given what was observed (no I/O, unit-tested).

Order of actions is fixed by the caller: for each :class:`Ensure`, the external user first, then
the Secret; the status last, and only when it differs from what is stored (a no-op reconcile
writes nothing). Nothing here ever plans a deletion of credentials: old generations and
unused Secrets are the janitor's business, expiry deletes the AppCredentials only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fjord.operators.common import conditions
from fjord.operators.common.result import earliest
from fjord.operators.credentials import naming
from fjord.operators.credentials.request import ServiceRequest, requests
from fjord.spec.infra import (
    AppCredentialsReason,
    AppCredentialsSpec,
    AppCredentialsStatus,
    ServiceState,
    ServiceStatus,
)


@dataclass(frozen=True)
class Target:
    generation: int
    secret_name: str


@dataclass(frozen=True)
class ObservedSecret:
    """The Secret a service should use, as found in the cluster."""

    name: str
    managed_by_us: bool
    spec_hash: str | None
    external_present: bool
    # Ours but being deleted (its finalizer removes the external user first), e.g. the janitor
    # removed a generation whose status write a crash lost. Wait for it, then recreate it.
    terminating: bool = False


@dataclass(frozen=True)
class Ensure:
    """Create or update the external user, then create (or update) the Secret."""

    request: ServiceRequest
    target: Target
    existing: bool  # the Secret exists: keep its password, rewrite it only if its data changes


WAIT_FOR_DELETION = 2.0  # seconds: a Secret's finalizer only has to drop one user


@dataclass(frozen=True)
class Plan:
    expired: bool = False
    ensures: list[Ensure] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    waiting_for: list[str] = field(default_factory=list)  # our Secrets still being deleted
    status: dict[str, Any] | None = None  # the status to write (after the ensures); None: as is
    requeue_after: float | None = None


def rotation_requested(body: Mapping[str, Any]) -> str | None:
    """The rotate annotation's value when it was not handled yet."""
    wanted = (body.get("metadata", {}).get("annotations") or {}).get(naming.ROTATE)
    done = (body.get("status") or {}).get("rotation")
    return wanted if wanted is not None and wanted != done else None


def targets(body: Mapping[str, Any], wanted: Sequence[ServiceRequest]) -> dict[str, Target]:
    """Per service key: the generation and Secret name this reconcile converges to."""
    known = {s.get("key"): s for s in (body.get("status") or {}).get("services") or []}
    bump = 1 if rotation_requested(body) is not None else 0
    result = {}
    for request in wanted:
        previous = known.get(request.key)
        same_base = previous is not None and previous.get("baseSecretName") == request.base_secret
        generation = int(previous.get("generation", 1)) if previous and same_base else 1
        generation += bump if previous and same_base else 0
        result[request.key] = Target(
            generation, naming.secret_name(request.base_secret, generation)
        )
    return result


def make_plan(
    body: Mapping[str, Any],
    spec: AppCredentialsSpec,
    observed: Mapping[str, ObservedSecret | None],
    *,
    now: datetime,
    resync: float,
) -> Plan:
    """What to do for ``body`` given the Secrets ``observed`` per service key."""
    status = dict(body.get("status") or {})
    generation = body.get("metadata", {}).get("generation")
    if spec.expires_at is not None and now >= spec.expires_at:
        return Plan(expired=True)
    wanted = requests(spec)
    goal = targets(body, wanted)
    ensures: list[Ensure] = []
    conflicts: list[str] = []
    waiting: list[str] = []
    for request in wanted:
        target = goal[request.key]
        seen = observed.get(request.key)
        if seen is None:
            ensures.append(Ensure(request, target, existing=False))
        elif seen.managed_by_us and seen.terminating:
            waiting.append(target.secret_name)
        elif not seen.managed_by_us:
            conflicts.append(target.secret_name)
        elif seen.spec_hash != request.spec_hash or not seen.external_present:
            ensures.append(Ensure(request, target, existing=True))
    expiry = (spec.expires_at - now).total_seconds() if spec.expires_at else None
    requeue = earliest(resync, expiry)
    if conflicts:
        return Plan(conflicts=conflicts, requeue_after=requeue)
    if waiting:
        return Plan(
            waiting_for=waiting,
            status=_waiting_status(status, waiting, generation, now),
            requeue_after=WAIT_FOR_DELETION,
        )
    services = [
        ServiceStatus(
            key=r.key,
            kind=r.kind,
            base_secret_name=r.base_secret,
            secret_name=goal[r.key].secret_name,
            generation=goal[r.key].generation,
            state=ServiceState.READY,
        )
        for r in wanted
    ]
    names = ", ".join(s.secret_name for s in services) or "none requested"
    values: dict[str, Any] = {
        "observed_generation": generation,
        "services": services,
        "conditions": conditions.summarize(
            status.get("conditions") or [],
            ready=True,
            reason=AppCredentialsReason.SYNCHRONIZED,
            message=f"credentials are in Secrets: {names}",
            generation=generation,
            now=now,
        ),
    }
    rotation = rotation_requested(body)
    if rotation is not None:
        values["rotation"] = rotation
    new_status = _merged(status, values)
    changed = new_status != status
    return Plan(ensures=ensures, status=new_status if changed else None, requeue_after=requeue)


def _waiting_status(
    status: Mapping[str, Any], waiting: Sequence[str], generation: int | None, now: datetime
) -> dict[str, Any] | None:
    """Not Ready while a Secret to report is being deleted (None when already said so).

    Ready promises that the Secrets the status names exist: one of them going away (the janitor,
    a person) withdraws it until the reconcile has recreated it.
    """
    names = ", ".join(waiting)
    summary = conditions.summarize(
        status.get("conditions") or [],
        ready=False,
        reason=AppCredentialsReason.SECRET_BEING_DELETED,
        message=f"Secret(s) {names} are being deleted; they are recreated once gone",
        reconciling=True,
        generation=generation,
        now=now,
    )
    new_status = _merged(status, {"observed_generation": generation, "conditions": summary})
    return new_status if new_status != status else None


def _merged(status: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``status`` with ``values`` (field names of :class:`AppCredentialsStatus`) set.

    The values go through the typed model, the one definition of the status (and of the CRD's
    schema); fields not given keep what is stored.
    """
    typed = AppCredentialsStatus.model_validate(values)
    return {**status, **typed.model_dump(mode="json", by_alias=True, exclude_unset=True)}


def failure_status(
    body: Mapping[str, Any],
    *,
    reason: str,
    message: str,
    permanent: bool,
    now: datetime,
    service: str | None = None,
) -> dict[str, Any] | None:
    """The status after a failed reconcile (None when it is already exactly that).

    A transient failure of an object that is Ready for its current generation keeps Ready
    (its Secrets exist and nothing was removed; only a re-check failed): Degraded and
    Reconciling carry the error. So a database blip does not fail every app's health check.
    """
    status = dict(body.get("status") or {})
    generation = body.get("metadata", {}).get("generation")
    previous = status.get("conditions") or []
    ready = conditions.find(previous, conditions.READY)
    keep_ready = (
        not permanent
        and ready is not None
        and ready.get("status") == "True"
        and ready.get("observedGeneration") == generation
    )
    summary = conditions.summarize(
        previous,
        ready=False,
        reason=reason,
        message=message,
        reconciling=not permanent,
        stalled=permanent,
        degraded=not permanent,
        generation=generation,
        now=now,
    )
    if keep_ready and ready is not None:
        summary = [ready if c.get("type") == conditions.READY else c for c in summary]
    values: dict[str, Any] = {"observed_generation": generation, "conditions": summary}
    if service is not None and status.get("services"):
        state = ServiceState.STALLED if permanent else ServiceState.DEGRADED
        values["services"] = [
            {**s, "state": state} if s.get("key") == service else s for s in status["services"]
        ]
    new_status = _merged(status, values)
    return new_status if new_status != status else None
