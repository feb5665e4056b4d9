"""One reconcile of one ``MaskinportenClient``: observe → plan → act → status.

Framework-free (kopf lives in ``handlers``), so it can run under any loop. Errors are classified
here: 5xx/429/connection failures are transient (Degraded, retried with backoff, credentials
kept), Digdir's 400 and 401/403 are Stalled with Digdir's own message (retried slowly, in case
someone grants the scope), anything else is treated as transient. The status is written before
the error is raised to the work queue (``fjord.operators.common.controller``), which schedules
the retry.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fjord.errors import FjordError
from fjord.kube import KubeError
from fjord.maskinporten.admin import SelfServiceClient
from fjord.maskinporten.errors import (
    AdminApiError,
    AdminAuthError,
    AdminValidationError,
    UnavailableError,
)
from fjord.operators.common import events
from fjord.operators.common.conditions import find
from fjord.operators.common.errors import PermanentError, TransientError
from fjord.operators.common.kubeapi import CountingKube
from fjord.operators.common.result import Result
from fjord.operators.maskinporten.act import Action, Actor
from fjord.operators.maskinporten.model import KeyPolicy, Observed
from fjord.operators.maskinporten.observe import (
    ClientListing,
    observe_clients,
    observe_secret,
    resource_from_body,
)
from fjord.operators.maskinporten.plan import identity, plan
from fjord.operators.maskinporten.status import (
    Failure,
    Report,
    Verdict,
    failed,
    status_patch,
)
from fjord.spec.infra import (
    API_VERSION,
    READY,
    MaskinportenClientEventReason,
    MaskinportenClientReason,
    MaskinportenClientSpec,
)

FINALIZER = "fjord.dev/maskinporten"
CONTROLLER = "fjord.dev/maskinporten-operator"
# The Event reason for each command that ran: what happened, in the past tense.
EVENT_REASONS = {
    "CreateClient": MaskinportenClientEventReason.CLIENT_CREATED,
    "UpdateClient": MaskinportenClientEventReason.CLIENT_UPDATED,
    "DeleteClient": MaskinportenClientEventReason.CLIENT_DELETED,
    "GenerateKey": MaskinportenClientEventReason.KEY_GENERATED,
    "ReplaceJwks": MaskinportenClientEventReason.KEYS_REGISTERED,
    "WriteSecret": MaskinportenClientEventReason.SECRET_WRITTEN,
    "DeleteSecret": MaskinportenClientEventReason.SECRET_DELETED,
    "ClearSecret": MaskinportenClientEventReason.SECRET_CLEARED,
}


@dataclass
class Memory:
    """What one object's reconciles remember between passes (lost on restart, by design)."""

    last_create_attempt: float = -1e18


def classify(exc: BaseException, where: str) -> Failure:
    """Transient (retry soon, keep credentials) or stalled (needs a change by someone)."""
    if isinstance(exc, AdminValidationError):
        fields = "; ".join(str(e.get("errorMessage")) for e in exc.errors if e.get("errorMessage"))
        detail = exc.description + (f" ({fields})" if fields else "")
        return Failure(
            False,
            MaskinportenClientReason.DIGDIR_REJECTED,
            f"Digdir refused {where}: {detail}. Fix spec.scopes (the org needs access to every "
            "scope); the operator retries on every change and periodically",
        )
    if isinstance(exc, AdminAuthError):
        return Failure(
            False,
            MaskinportenClientReason.SUPPLIER_NOT_AUTHORIZED,
            f"Digdir refused the supplier client on {where} (HTTP {exc.status}: "
            f"{exc.description}); check the supplier's idporten:dcr.* scopes and its orgnr",
        )
    if isinstance(exc, UnavailableError):
        return Failure(
            True,
            MaskinportenClientReason.DIGDIR_UNAVAILABLE,
            f"Digdir unavailable during {where}: {exc}",
        )
    if isinstance(exc, AdminApiError):
        return Failure(True, MaskinportenClientReason.DIGDIR_ERROR, f"Digdir failed {where}: {exc}")
    if isinstance(exc, KubeError):
        return Failure(
            True, MaskinportenClientReason.KUBERNETES_ERROR, f"Kubernetes refused {where}: {exc}"
        )
    if isinstance(exc, FjordError | OSError):
        return Failure(True, MaskinportenClientReason.ERROR, f"{where}: {exc}")
    return Failure(
        True, MaskinportenClientReason.INTERNAL_ERROR, f"{where}: {type(exc).__name__}: {exc}"
    )


@dataclass
class Reconciler:
    """Shared by every object: one admin client (one cached supplier token), one listing."""

    api: SelfServiceClient
    kube: CountingKube
    listing: ClientListing
    actor: Actor
    policy: KeyPolicy
    platform_id: str
    client_orgno: str
    authority: str
    clock: Callable[[], float] = time.time

    async def reconcile(self, body: Mapping[str, Any], memory: Memory, attempts: int) -> Result:
        """One pass; the status is written, then failures raise Transient/PermanentError."""
        resource = resource_from_body(body)
        step = "observing"
        actions: list[Action] = []
        writes = 0
        try:
            if not resource.deleting:
                # Persist the finalizer before touching Digdir: a client must never outlive
                # a CR that was deleted while we were creating it.
                writes += await self._ensure_finalizer(body)
            observed = await self._observe(body, memory)
            plan_ = plan(observed, self.policy)
            step = "acting"
            keyring: dict[str, dict[str, Any]] = {}
            if observed.secret.settings is not None:
                keyring = {str(k["kid"]): k for k in observed.secret.settings.all_keys()}
            outcome = await self.actor.run(
                resource,
                plan_.commands,
                keyring,
                on_create_attempt=lambda: _mark_create(memory, self.listing),
            )
            actions = outcome.actions
            writes += sum(1 for a in actions if a.result == "ok")
            await self._announce(body, actions)
            if outcome.error is not None:
                raise outcome.error
            if resource.deleting:
                await self._drop_finalizer(body)
                return Result(requeue_after=None, writes=writes + 1)
        except Exception as exc:
            failure = classify(exc, _where(step, actions))
            # The Warning goes first: whoever sees the condition can find the Event too.
            await self._warn_once(body, failure)
            await self._write_status(body, failed(body, failure, attempts + 1), actions, None)
            if failure.transient:
                raise TransientError(failure.message, reason=failure.reason) from exc
            raise PermanentError(failure.message, reason=failure.reason) from exc
        report = Report(
            client_id=plan_.client_id or outcome.client_id,
            authority=self.authority,
            key_ids=plan_.key_ids,
            secret_name=resource.secret_name,
            rotation_request=plan_.rotation_request,
            next_rotation=plan_.next_rotation,
        )
        o = plan_.outcome
        verdict = Verdict(o.status == "True", o.reason, o.message, stalled=plan_.stalled)
        writes += await self._write_status(body, verdict, actions, report)
        return Result(requeue_after=plan_.requeue_after, writes=writes)

    async def _announce(self, body: Mapping[str, Any], actions: list[Action]) -> None:
        """One Normal Event per command that changed something in Digdir or the cluster.

        Posted concurrently: a new client's four Events would otherwise be four round trips
        in a row on every first reconcile (their eventTime is set in command order all the same).
        """
        await asyncio.gather(
            *(
                events.post(
                    self.kube.kube,
                    body,
                    events.NORMAL,
                    EVENT_REASONS.get(action.action, action.action),
                    action.detail,
                    controller=CONTROLLER,
                )
                for action in actions
                if action.result == "ok"
            )
        )

    async def _warn_once(self, body: Mapping[str, Any], failure: Failure) -> None:
        """A Warning when the failure is new; retries of the same failure only update status."""
        ready = find((body.get("status") or {}).get("conditions") or [], READY) or {}
        if ready.get("reason") == failure.reason:
            return
        await events.post(
            self.kube.kube,
            body,
            events.WARNING,
            failure.reason,
            failure.message,
            controller=CONTROLLER,
        )

    async def _observe(self, body: Mapping[str, Any], memory: Memory) -> Observed:
        r = resource_from_body(body)
        secret = await observe_secret(self.kube, r.namespace, r.secret_name, r.uid)
        old_secret = None
        if r.status_secret_name and r.status_secret_name != r.secret_name:
            old_secret = await observe_secret(self.kube, r.namespace, r.status_secret_name, r.uid)
        held = secret.settings.client_id if secret.settings else None
        known = [i for i in (held, r.status_client_id) if i]
        ident = identity(self.platform_id, r.namespace, r.name)
        clients = await observe_clients(
            self.api,
            self.listing,
            ident,
            known,
            list_anyway=r.deleting,
            newer_than=memory.last_create_attempt,
        )
        return Observed(
            resource=r,
            identity=ident,
            client_orgno=self.client_orgno,
            authority=self.authority,
            clients=clients,
            secret=secret,
            now=self.clock(),
            new_kid=str(uuid.uuid4()),
            old_secret=old_secret,
        )

    async def _ensure_finalizer(self, body: Mapping[str, Any]) -> int:
        meta = body.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        if FINALIZER in finalizers:
            return 0
        # JSON patch guarded by resourceVersion: never clobbers another controller's finalizer.
        op = (
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER}
            if finalizers
            else {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}
        )
        patch = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
            op,
        ]
        await self.kube.patch(
            API_VERSION,
            MaskinportenClientSpec.kind,
            str(meta["name"]),
            patch,
            str(meta["namespace"]),
            content_type="application/json-patch+json",
        )
        return 1

    async def _drop_finalizer(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        current = await self.kube.get(
            API_VERSION, MaskinportenClientSpec.kind, str(meta["name"]), str(meta["namespace"])
        )
        if current is None:
            return
        finalizers = list(current["metadata"].get("finalizers") or [])
        if FINALIZER not in finalizers:
            return
        index = finalizers.index(FINALIZER)
        patch = [
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": FINALIZER},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ]
        try:
            await self.kube.patch(
                API_VERSION,
                MaskinportenClientSpec.kind,
                str(meta["name"]),
                patch,
                str(meta["namespace"]),
                content_type="application/json-patch+json",
            )
        except KubeError as exc:
            if exc.status != 404:
                raise

    async def _write_status(
        self,
        body: Mapping[str, Any],
        verdict: Verdict,
        actions: list[Action],
        report: Report | None,
    ) -> int:
        """Merge-patch ``status``; skipped (0 writes) when nothing would change."""
        meta = body.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return 0  # the object is going away; its status no longer matters
        history = [a.as_status() for a in actions]
        patch = status_patch(body, verdict, history, report, now=datetime.now(UTC))
        if patch is None:
            return 0
        try:
            await self.kube.patch(
                API_VERSION,
                MaskinportenClientSpec.kind,
                str(meta["name"]),
                {"status": patch},
                str(meta["namespace"]),
                subresource="status",
            )
        except KubeError as exc:
            if exc.status == 404:  # deleted meanwhile: nothing to report on
                return 0
            raise
        return 1


def _mark_create(memory: Memory, listing: ClientListing) -> None:
    memory.last_create_attempt = listing.now()


def _where(step: str, actions: list[Action]) -> str:
    broken = next((a for a in actions if a.result == "failed"), None)
    return broken.action if broken is not None else step
