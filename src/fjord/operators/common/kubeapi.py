"""The Kubernetes calls of reconcilers, counted (requests and writes) per operator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fjord.kube import Kube, Obj
from fjord.operators.common.metrics import OperatorMetrics


class CountingKube:
    def __init__(self, kube: Kube, metrics: OperatorMetrics, operator: str) -> None:
        self.kube = kube
        self._metrics = metrics
        self._operator = operator

    def _count(self, verb: str, write: bool) -> None:
        self._metrics.api_requests.labels(self._operator, verb).inc()
        if write:
            self._metrics.api_writes.labels(self._operator, verb).inc()

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Obj | None:
        self._count("get", False)
        return await self.kube.get(api_version, kind, name, namespace)

    async def items(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
    ) -> list[Obj]:
        self._count("list", False)
        return await self.kube.items(api_version, kind, namespace, label_selector=label_selector)

    async def apply(
        self, obj: Mapping[str, Any], *, field_manager: str = "fjord", force: bool = False
    ) -> Obj:
        self._count("apply", True)
        return await self.kube.apply(obj, field_manager=field_manager, force=force)

    async def create(self, obj: Mapping[str, Any]) -> Obj:
        self._count("create", True)
        return await self.kube.create(obj)

    async def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Mapping[str, Any] | list[Any],
        namespace: str | None = None,
        *,
        content_type: str = "application/merge-patch+json",
        subresource: str | None = None,
    ) -> Obj:
        self._count("patch", True)
        return await self.kube.patch(
            api_version,
            kind,
            name,
            patch,
            namespace,
            content_type=content_type,
            subresource=subresource,
        )

    async def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> bool:
        self._count("delete", True)
        return await self.kube.delete(api_version, kind, name, namespace)
