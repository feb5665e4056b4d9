"""One reconcile of an AppCredentials: observe → plan (pure) → act in order → status.

Acting order: for each service, the external user first, then the Secret (a crash in between
leaves a user without a Secret, which the next reconcile reuses, since names are deterministic);
the status last. A failure writes Degraded (transient) or Stalled (permanent) once; retries of the
same failure write nothing more. Nothing is ever deleted here except an expired AppCredentials.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError

from fjord.kube import KubeError
from fjord.operators.common import conditions, events
from fjord.operators.common.errors import PermanentError, ReconcileError, TransientError
from fjord.operators.common.kubeapi import CountingKube
from fjord.operators.common.nudges import Nudges
from fjord.operators.common.result import Result
from fjord.operators.credentials import naming, secret
from fjord.operators.credentials.plan import (
    Ensure,
    ObservedSecret,
    failure_status,
    make_plan,
    targets,
)
from fjord.operators.credentials.request import requests
from fjord.operators.credentials.services.base import ServiceHandler
from fjord.spec.infra import (
    API_VERSION,
    AppCredentialsEventReason,
    AppCredentialsReason,
    AppCredentialsSpec,
)

KIND = AppCredentialsSpec.kind
CONTROLLER = "fjord.dev/credentials-operator"

log = structlog.get_logger("fjord.operators.credentials")


def kube_error(exc: KubeError, what: str) -> ReconcileError:
    if exc.status in (0, 409, 429) or exc.status >= 500:
        return TransientError(f"{what}: {exc}", reason=AppCredentialsReason.KUBERNETES_UNAVAILABLE)
    return PermanentError(f"{what}: {exc}", reason=AppCredentialsReason.KUBERNETES_REJECTED)


class CredentialsReconciler:
    def __init__(
        self,
        kube: CountingKube,
        handlers: Mapping[str, ServiceHandler],
        nudges: Nudges,
        *,
        resync: float,
    ) -> None:
        self._kube = kube
        self._handlers = handlers
        self._nudges = nudges
        self._resync = resync

    async def __call__(self, key: Hashable, body: dict[str, Any], attempts: int) -> Result:
        namespace = body["metadata"]["namespace"]
        name = body["metadata"]["name"]
        with structlog.contextvars.bound_contextvars(namespace=namespace, app_credentials=name):
            progress: dict[str, str] = {}  # the service being worked on, for the status
            try:
                return await self._reconcile(namespace, name, body, progress)
            except KubeError as exc:
                error = kube_error(exc, "Kubernetes API")
                await self._report_failure(body, error, progress.get("service"))
                raise error from exc
            except ReconcileError as exc:
                await self._report_failure(body, exc, progress.get("service"))
                raise

    async def _reconcile(
        self, namespace: str, name: str, body: dict[str, Any], progress: dict[str, str]
    ) -> Result:
        try:
            spec = AppCredentialsSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            raise PermanentError(
                f"invalid spec: {exc}", reason=AppCredentialsReason.INVALID_SPEC
            ) from exc
        observed, found = await self._observe(namespace, name, body, spec, progress)
        now = datetime.now(UTC)
        plan = make_plan(body, spec, observed, now=now, resync=self._resync)
        if plan.expired:
            await self._kube.delete(API_VERSION, KIND, name, namespace)
            self._nudges.nudge(namespace)  # its Secrets are past expires-at now
            await events.post(
                self._kube.kube,
                body,
                events.NORMAL,
                AppCredentialsEventReason.EXPIRED,
                "expiresAt has passed; deleted",
                controller=CONTROLLER,
            )
            return Result(writes=1)
        if plan.conflicts:
            raise PermanentError(
                f"Secret(s) {', '.join(plan.conflicts)} exist but are not managed by fjord; "
                "rename the secretName or delete those Secrets",
                reason=AppCredentialsReason.SECRET_NAME_TAKEN,
            )
        if plan.waiting_for:
            log.info("waiting for Secrets being deleted", secrets=plan.waiting_for)
            if plan.status is None:
                return Result(requeue_after=plan.requeue_after)
            await self._write_status(namespace, name, plan.status)
            return Result(requeue_after=plan.requeue_after, writes=1)
        writes = 0
        for ensure in plan.ensures:
            progress["service"] = ensure.request.key
            writes += await self._ensure(
                namespace, name, spec, ensure, found.get(ensure.request.key)
            )
        progress.pop("service", None)
        if plan.status is not None:
            await self._write_status(namespace, name, plan.status)
            writes += 1
            if _dropped_secrets(body.get("status"), plan.status):
                # A rotation or a new secretName left a Secret unreferenced: the janitor looks
                # soon (never waiting for it). Other reconciles leave it nothing to do; its
                # periodic sweep (and the one at start-up) covers everything else.
                self._nudges.nudge(namespace)
            if not _healthy(body.get("status")) and _healthy(plan.status):
                ready = conditions.find(plan.status["conditions"], conditions.READY) or {}
                await events.post(
                    self._kube.kube,
                    body,
                    events.NORMAL,
                    AppCredentialsEventReason.READY,
                    str(ready.get("message") or "credentials are ready"),
                    controller=CONTROLLER,
                )
        if writes:
            log.info(
                "reconciled", writes=writes, secrets=[e.target.secret_name for e in plan.ensures]
            )
        return Result(requeue_after=plan.requeue_after, writes=writes)

    async def _observe(
        self,
        namespace: str,
        name: str,
        body: dict[str, Any],
        spec: AppCredentialsSpec,
        progress: dict[str, str],
    ) -> tuple[dict[str, ObservedSecret | None], dict[str, dict[str, Any]]]:
        wanted = requests(spec)
        goal = targets(body, wanted)
        observed: dict[str, ObservedSecret | None] = {}
        found: dict[str, dict[str, Any]] = {}
        for request in wanted:
            progress["service"] = request.key
            target = goal[request.key]
            try:
                obj = await self._kube.get("v1", "Secret", target.secret_name, namespace)
            except KubeError as exc:
                raise kube_error(exc, f"reading Secret {target.secret_name}") from exc
            if obj is None:
                observed[request.key] = None
                continue
            found[request.key] = obj
            meta = obj.get("metadata", {})
            labels = meta.get("labels") or {}
            notes = meta.get("annotations") or {}
            ours = (
                labels.get(naming.MANAGED_BY) == naming.MANAGER
                and labels.get(naming.LABEL_OWNER) == name
                and notes.get(naming.SERVICE) == request.key
            )
            terminating = bool(meta.get("deletionTimestamp"))
            present = ours and not terminating and await self._handlers[request.kind].present(notes)
            observed[request.key] = ObservedSecret(
                target.secret_name, ours, notes.get(naming.SPEC_HASH), present, terminating
            )
        return observed, found

    async def _ensure(
        self,
        namespace: str,
        name: str,
        spec: AppCredentialsSpec,
        ensure: Ensure,
        existing: dict[str, Any] | None,
    ) -> int:
        handler = self._handlers[ensure.request.kind]
        old_data = secret.decode(existing.get("data")) if existing else {}
        issued = await handler.apply(
            namespace,
            name,
            ensure.target.secret_name,
            ensure.request,
            old_data.get("password"),
        )
        manifest = secret.manifest(namespace, name, spec, ensure, issued.data, issued.annotations)
        if existing is None:
            try:
                await self._kube.create(manifest)
            except KubeError as exc:
                if exc.status == 409:
                    # Created meanwhile (a stale view): the next pass re-applies its password.
                    raise TransientError(
                        f"Secret {ensure.target.secret_name} appeared concurrently",
                        reason=AppCredentialsReason.SECRET_CONFLICT,
                        retry_after=1,
                    ) from exc
                # The user just issued would be named by no Secret and outlive the app (as when
                # a namespace being deleted refuses new Secrets): remove it again.
                await self._discard(handler, manifest["metadata"]["annotations"])
                raise kube_error(exc, f"creating Secret {ensure.target.secret_name}") from exc
            await events.post(
                self._kube.kube,
                _ref(namespace, name),
                events.NORMAL,
                AppCredentialsEventReason.SECRET_CREATED,
                f"created Secret {ensure.target.secret_name}",
                controller=CONTROLLER,
            )
            return 1
        old_notes = existing.get("metadata", {}).get("annotations") or {}
        new_notes = manifest["metadata"]["annotations"]
        if old_data == issued.data and all(old_notes.get(k) == v for k, v in new_notes.items()):
            return 0
        patch = {"metadata": {"annotations": new_notes}, "data": manifest["data"]}
        try:
            await self._kube.patch("v1", "Secret", ensure.target.secret_name, patch, namespace)
        except KubeError as exc:
            raise kube_error(exc, f"updating Secret {ensure.target.secret_name}") from exc
        return 1

    async def _discard(self, handler: ServiceHandler, notes: Mapping[str, str]) -> None:
        try:
            await handler.cleanup(notes)
        except Exception:  # the Secret's error is the one to report; this is only logged
            log.warning("could not remove the user of an uncreated Secret", exc_info=True)

    async def _write_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            await self._kube.patch(
                API_VERSION, KIND, name, {"status": status}, namespace, subresource="status"
            )
        except KubeError as exc:
            if exc.status == 404:
                return  # deleted meanwhile
            raise kube_error(exc, "writing status") from exc

    async def _report_failure(
        self, body: dict[str, Any], error: ReconcileError, service: str | None
    ) -> None:
        meta = body["metadata"]
        status = failure_status(
            body,
            reason=error.reason,
            message=error.message,
            permanent=isinstance(error, PermanentError),
            now=datetime.now(UTC),
            service=service,
        )
        if status is None:
            return  # the same failure again: already reported, nothing to write
        try:
            await self._write_status(meta["namespace"], meta["name"], status)
        except ReconcileError as exc:
            log.warning("status_write_failed", error=str(exc))
        else:
            # One Event per change of the reported failure (Degraded or Stalled, new reason).
            await events.post(
                self._kube.kube,
                body,
                events.WARNING,
                error.reason,
                error.message,
                controller=CONTROLLER,
            )


def _dropped_secrets(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether a Secret the old status named is no longer named by the new one."""

    def names(status: Mapping[str, Any] | None) -> set[str]:
        return {str(s.get("secretName")) for s in (status or {}).get("services") or []}

    return bool(names(old) - names(new))


def _healthy(status: Mapping[str, Any] | None) -> bool:
    """Ready, and neither Degraded nor Stalled."""
    found = (status or {}).get("conditions") or []

    def true(type_: str) -> bool:
        cond = conditions.find(found, type_)
        return cond is not None and cond.get("status") == "True"

    return true(conditions.READY) and not (true(conditions.DEGRADED) or true(conditions.STALLED))


def _ref(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"namespace": namespace, "name": name},
    }
