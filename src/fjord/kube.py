"""A thin, typed layer over kubernetes_asyncio's dynamic client.

fjord works with plain dicts (manifests it rendered, CRs it owns) of any kind, so everything goes
through discovery. This wrapper is the one place that knows the client library: apply with a named
field manager, get/list/delete that treat 404 as "absent", watch, and polling waits. Swapping the
client later (e.g. to ``kubernetes.aio``) stays a change in this file.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.dynamic import DynamicClient
from kubernetes_asyncio.watch import Watch

from fjord.errors import FjordError

Obj = dict[str, Any]


class KubeError(FjordError):
    """The API server refused a request; ``status`` and ``reason`` are the server's own."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason


def _kube_error(exc: ApiException) -> KubeError:

    status = int(getattr(exc, "status", 0) or 0)
    body: Any = getattr(exc, "body", "") or ""
    try:
        data = json.loads(body)
        return KubeError(status, str(data.get("reason", "")), str(data.get("message", body)))
    except (TypeError, ValueError):
        return KubeError(status, str(getattr(exc, "reason", "")), str(body))


def _checked(result: Any) -> Obj:
    """The object the server returned; a failure ``Status`` becomes a :class:`KubeError`.

    The dynamic client streams responses, so error statuses come back as ``Status`` objects
    instead of exceptions.
    """
    data = dict(result.to_dict() if hasattr(result, "to_dict") else result)
    if data.get("kind") == "Status" and data.get("status") == "Failure":
        raise KubeError(
            int(data.get("code", 0)), str(data.get("reason", "")), str(data.get("message", ""))
        )
    return data


class Kube:
    """An async session against one cluster."""

    def __init__(self, api: ApiClient, dynamic: DynamicClient) -> None:
        self._api = api
        self._dynamic = dynamic

    @classmethod
    async def connect(cls, kubeconfig: Path | str | None = None) -> Kube:
        """A session from ``kubeconfig``, else ``$KUBECONFIG``, else the pod's service account.

        The one place fjord builds a Kubernetes client: operators, the CLI, the local platform,
        tests and benchmarks all come through here.
        """
        path = kubeconfig or os.environ.get("KUBECONFIG")
        if path:
            api = await k8s_config.new_client_from_config(config_file=str(path))
        else:
            configuration = Configuration()
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            api = ApiClient(configuration)
        return cls(api, await DynamicClient(api))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._api.close()

    @property
    def api_client(self) -> ApiClient:
        return self._api

    async def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return await self._dynamic.resources.get(api_version=api_version, kind=kind)
        except Exception as exc:
            # A CRD installed after discovery ran: refresh once, then give up with a clear error.
            await self._dynamic.resources.invalidate_cache()
            try:
                return await self._dynamic.resources.get(api_version=api_version, kind=kind)
            except Exception:
                raise FjordError(
                    f"the cluster does not serve {kind} in {api_version}",
                    hint="install the CRD that defines it, and wait until it is Established",
                ) from exc

    async def apply(
        self,
        obj: Mapping[str, Any],
        *,
        field_manager: str = "fjord",
        force: bool = False,
        dry_run: bool = False,
    ) -> Obj:
        """Server-side apply; conflicts with other managers raise unless ``force``.
        ``dry_run``: validated and admitted by the apiserver, not stored."""
        resource = await self._resource(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata", {})
        try:
            result = await self._dynamic.server_side_apply(
                resource,
                body=dict(obj),
                name=meta.get("name"),
                namespace=meta.get("namespace"),
                field_manager=field_manager,
                force_conflicts=force,
                dry_run="All" if dry_run else None,
            )
        except ApiException as exc:
            raise _kube_error(exc) from exc
        return _checked(result)

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Obj | None:
        resource = await self._resource(api_version, kind)
        try:
            return _checked(await self._dynamic.get(resource, name=name, namespace=namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _kube_error(exc) from exc
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def items(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
    ) -> list[Obj]:
        resource = await self._resource(api_version, kind)
        try:
            result = await self._dynamic.get(
                resource, namespace=namespace, label_selector=label_selector
            )
        except ApiException as exc:
            raise _kube_error(exc) from exc
        return [dict(item) for item in _checked(result).get("items", [])]

    async def create(self, obj: Mapping[str, Any]) -> Obj:
        resource = await self._resource(obj["apiVersion"], obj["kind"])
        try:
            result = await self._dynamic.create(
                resource, body=dict(obj), namespace=obj.get("metadata", {}).get("namespace")
            )
        except ApiException as exc:
            raise _kube_error(exc) from exc
        return _checked(result)

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
        resource = await self._resource(api_version, kind)
        if subresource:
            resource = getattr(resource, subresource)
        try:
            result = await self._dynamic.patch(
                resource,
                body=patch,  # type: ignore[arg-type]  # JSON patches are lists; the client passes them on
                name=name,
                namespace=namespace,
                content_type=content_type,
            )
        except ApiException as exc:
            raise _kube_error(exc) from exc
        return _checked(result)

    async def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        propagation: str | None = None,
    ) -> bool:
        """Delete; False if it was already gone."""
        resource = await self._resource(api_version, kind)
        body = {"propagationPolicy": propagation} if propagation else None
        try:
            _checked(
                await self._dynamic.delete(resource, name=name, namespace=namespace, body=body)
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise _kube_error(exc) from exc
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        resource_version: int | None = None,
        timeout: int = 30,
    ) -> AsyncIterator[tuple[str, Obj]]:
        """Yield ``(event type, object)`` until ``timeout`` seconds pass."""
        resource = await self._resource(api_version, kind)
        watcher = Watch()
        stream = self._dynamic.watch(
            resource,
            namespace=namespace,
            resource_version=resource_version,
            timeout=timeout,
            watcher=watcher,
        )
        try:
            async for event in stream:
                yield str(event["type"]), dict(event["raw_object"])
        finally:
            watcher.stop()

    async def wait_for(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        until: Callable[[Obj | None], bool],
        timeout: float = 60.0,
        what: str | None = None,
    ) -> Obj | None:
        """Poll an object until ``until(obj)`` holds (``obj`` is None while it does not exist)."""
        deadline = time.monotonic() + timeout
        last: Obj | None = None
        while True:
            last = await self.get(api_version, kind, name, namespace)
            if until(last):
                return last
            if time.monotonic() > deadline:
                where = f"{namespace}/{name}" if namespace else name
                raise TimeoutError(
                    f"timed out after {timeout:.0f}s waiting for {kind} {where}"
                    + (f" to be {what}" if what else "")
                    + f"; last seen: {_summary(last)}"
                )
            await asyncio.sleep(0.2)


def condition(obj: Obj | None, type_: str) -> dict[str, Any] | None:
    """The condition of ``type_`` in ``obj.status.conditions``, if any."""
    if not obj:
        return None
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def is_true(obj: Obj | None, type_: str) -> bool:
    cond = condition(obj, type_)
    return cond is not None and cond.get("status") == "True"


def has_artifact(obj: Obj | None) -> bool:
    """A Flux source that is Ready *and* has its artifact recorded.

    Flux's patch helper writes status conditions before the rest of status, so a reader can see
    ``Ready=True`` a moment before ``status.artifact`` exists; waiting on both avoids that race.
    """
    return is_true(obj, "Ready") and bool((obj or {}).get("status", {}).get("artifact"))


def _summary(obj: Obj | None) -> str:
    if obj is None:
        return "absent"
    conditions = (obj.get("status") or {}).get("conditions") or []
    return (
        "; ".join(
            f"{c.get('type')}={c.get('status')} ({c.get('reason', '')}: {c.get('message', '')})"
            for c in conditions
        )
        or "no conditions"
    )
