"""The Secret finalizer: a managed Secret being deleted loses its external user first.

Runs every handler's cleanup with only the Secret's annotations (each handler ignores Secrets
of other kinds), then removes our finalizer with a JSON patch guarded by a ``test`` of the
finalizer list, so a concurrent change of the list fails the patch instead of clobbering it.
A failure keeps the finalizer (the Secret stays Terminating) and is retried with backoff.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import structlog

from fjord.kube import KubeError
from fjord.operators.common.errors import TransientError
from fjord.operators.common.kubeapi import CountingKube
from fjord.operators.common.result import Result
from fjord.operators.credentials import naming
from fjord.operators.credentials.reconcile import kube_error
from fjord.operators.credentials.services.base import ServiceHandler
from fjord.spec.infra import AppCredentialsReason

log = structlog.get_logger("fjord.operators.credentials.finalizer")


class SecretFinalizer:
    def __init__(self, kube: CountingKube, handlers: Mapping[str, ServiceHandler]) -> None:
        self._kube = kube
        self._handlers = handlers

    async def __call__(self, key: Hashable, body: dict[str, Any], attempts: int) -> Result:
        meta = body.get("metadata", {})
        finalizers = list(meta.get("finalizers") or [])
        if not meta.get("deletionTimestamp") or naming.FINALIZER not in finalizers:
            return Result()
        notes = meta.get("annotations") or {}
        for handler in self._handlers.values():
            await handler.cleanup(notes)
        index = finalizers.index(naming.FINALIZER)
        patch = [
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": naming.FINALIZER},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ]
        try:
            await self._kube.patch(
                "v1",
                "Secret",
                meta["name"],
                patch,
                meta["namespace"],
                content_type="application/json-patch+json",
            )
        except KubeError as exc:
            if exc.status == 404:
                return Result(writes=0)
            if exc.status == 422:  # the list changed under us: look again
                raise TransientError(
                    "finalizer list changed",
                    reason=AppCredentialsReason.FINALIZER_CONFLICT,
                    retry_after=1,
                ) from exc
            raise kube_error(exc, f"removing finalizer of Secret {meta['name']}") from exc
        log.info("secret_finalized", namespace=meta["namespace"], secret=meta["name"])
        return Result(writes=1)
