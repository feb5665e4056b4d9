"""Count every HTTP call the operator makes to Digdir (admin API and token endpoint).

Digdir rate-limits and bills attention per supplier, so platform teams want to see how many calls
the operator makes and how they end. Counted on the HTTP client's response hook, outside the
reconcile logic; a call that never got a response (connection failure) shows up as the retry
that follows it and in ``fjord_operator_errors``.
"""

from __future__ import annotations

import httpx2
from prometheus_client import CollectorRegistry, Counter

METRIC = "fjord_maskinporten_digdir_requests"


def digdir_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        METRIC,
        "HTTP calls to Digdir by method, endpoint (client ids replaced by {id}) and status code.",
        ["method", "endpoint", "code"],
        registry=registry,
    )


def endpoint(path: str) -> str:
    """``/api/v1/clients/abc/jwks`` → ``/clients/{id}/jwks``: bounded label values."""
    parts = [p for p in path.split("/") if p]
    if "clients" in parts:
        rest = parts[parts.index("clients") + 1 :]
        return "/".join(["", "clients", *(["{id}"] if rest else []), *rest[1:]])
    return "/" + (parts[-1] if parts else "")


def counting_client(counter: Counter, timeout: float = 30.0) -> httpx2.AsyncClient:
    """An HTTP client that counts each response in ``counter``."""

    async def count(response: httpx2.Response) -> None:
        request = response.request
        counter.labels(request.method, endpoint(request.url.path), str(response.status_code)).inc()

    return httpx2.AsyncClient(timeout=timeout, event_hooks={"response": [count]})
