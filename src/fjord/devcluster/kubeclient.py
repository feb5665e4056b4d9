"""A small synchronous Kubernetes REST client for bringing a dev cluster up.

Bring-up needs only a handful of calls on kinds whose paths are known (nodes, namespaces, CRDs,
service accounts), so plain HTTPS with the admin certificate is simpler and faster to import than
a generated client. Product code (operators, control plane) uses kubernetes_asyncio instead.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import httpx2

from fjord.devcluster.pki import ClusterPKI
from fjord.errors import FjordError

FIELD_MANAGER = "fjord-devcluster"


class KubeAPIError(FjordError):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        try:
            message = json.loads(body).get("message", body)
        except ValueError:
            message = body
        super().__init__(f"{method} {path} -> {status}: {message}")
        self.status = status


class KubeREST:
    def __init__(self, server: str, pki: ClusterPKI, timeout: float = 10.0) -> None:
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self._client = httpx2.Client(base_url=server, verify=context, timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def _check(self, response: httpx2.Response) -> Any:
        self._raise_for_status(response)
        return response.json() if response.content else None

    def _raise_for_status(self, response: httpx2.Response) -> None:
        if response.status_code >= 400:
            raise KubeAPIError(
                response.request.method,
                response.request.url.path,
                response.status_code,
                response.text,
            )

    def get_text(self, path: str) -> str:
        response = self._client.get(path)
        self._raise_for_status(response)
        return response.text

    def get(self, path: str) -> Any:
        return self._check(self._client.get(path))

    def get_or_none(self, path: str) -> Any:
        response = self._client.get(path)
        if response.status_code == 404:
            return None
        return self._check(response)

    def apply(self, path: str, obj: Mapping[str, Any], *, force: bool = True) -> Any:
        """Server-side apply ``obj`` at ``path`` (the object's own URL, including its name)."""
        response = self._client.patch(
            path,
            params={"fieldManager": FIELD_MANAGER, "force": "true" if force else "false"},
            content=json.dumps(obj),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        return self._check(response)

    def patch_status(self, path: str, patch: Mapping[str, Any]) -> Any:
        response = self._client.patch(
            path + "/status",
            content=json.dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        return self._check(response)
