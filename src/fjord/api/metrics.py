"""``/metrics``: the control plane in Prometheus' text format.

Live counters (Flux events by outcome, API requests by route and status) live on a registry
owned by the app instance, not a global one; the fleet gauges are read from the database at
scrape time (``fjord.control.fleet``), and so are the delivery outcomes of the last 90 days
(``fjord.control.outcomes``, two queries). No token is needed: only numbers by org and
environment, never app or cluster names.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fjord.api.deps import PlaneDep
from fjord.control import outcomes
from fjord.control.fleet import fleet_counts

router = APIRouter()


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.flux_events = Counter(
            "fjord_flux_events",
            "Flux events received, by outcome: recorded, replayed (already recorded), refused "
            "(unknown cluster or bad signature), malformed (signed, but not a Flux event).",
            ["outcome"],
            registry=self.registry,
        )
        self.requests = Histogram(
            "fjord_api_request_seconds",
            "API and UI requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )


def metrics_of(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


class RequestTimer:
    """ASGI middleware: time every request under its route template (``/api/apps/{org}/{app}``).

    Plain ASGI rather than ``BaseHTTPMiddleware``: no extra task per request, and streaming
    responses pass through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            scope["app"].state.metrics.requests.labels(
                scope["method"], _template(scope), str(status)
            ).observe(time.perf_counter() - started)


def _template(scope: Scope) -> str:
    # The router records the matched route in the scope; its path is the template.
    route = scope.get("route")
    if route is None:
        return "unmatched"  # 404s: one bounded label, whatever paths scanners try
    return str(getattr(route, "path_format", None) or getattr(route, "path", "other"))


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, plane: PlaneDep) -> Response:
    counts = await fleet_counts(plane)
    fleet = CollectorRegistry()
    _gauge(
        fleet,
        "fjord_deployments_active",
        "Unfinished deployments by org, environment and state.",
        "state",
        counts.deployments,
    )
    _gauge(
        fleet,
        "fjord_app_clusters",
        "Apps × clusters by what Flux last reported: ready, failed, pending, or unknown_revision "
        "(running a digest fjord never released).",
        "health",
        counts.cells,
    )
    _gauge(
        fleet,
        "fjord_clusters",
        "Active clusters by the health of their root sync.",
        "health",
        counts.clusters,
    )
    _outcomes(fleet, await outcomes.collect(plane))
    body = generate_latest(metrics_of(request).registry) + generate_latest(fleet)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _gauge(
    registry: CollectorRegistry,
    name: str,
    documentation: str,
    label: str,
    counts: Mapping[tuple[str, str, str], int],
) -> None:
    gauge = Gauge(name, documentation, ["org", "environment", label], registry=registry)
    for (org, env, value), n in counts.items():
        gauge.labels(org, env, value).set(n)


def _outcomes(registry: CollectorRegistry, found: outcomes.Outcomes[tuple[str, str]]) -> None:
    """Delivery outcomes by org and environment over the last 90 days (``control/outcomes.py``).

    Gauges, not counters: each scrape recounts a sliding window, so a value may fall. Per app
    they are on ``GET /api/apps/{org}/{app}/outcomes`` (with a token), never here.
    """
    labels = ["org", "environment"]
    finished = Gauge(
        "fjord_deployments_finished",
        "Changes (deploy, rotate, promote, rollback) finished in the last 90 days by outcome:"
        " ready, failed, rolled_back, aborted. Deployment frequency: outcome=ready over 90"
        " days; change failure rate: the others over all.",
        [*labels, "outcome"],
        registry=registry,
    )
    for ((org, env), state), n in found.finished.items():
        finished.labels(org, env, state).set(n)
    for name, documentation, sums, counts in (
        (
            "fjord_lead_time_seconds",
            "Changes ready in the last 90 days: from the request to every cluster ready.",
            found.lead_seconds,
            found.lead_count,
        ),
        (
            "fjord_time_to_restore_seconds",
            "Restores in the last 90 days: from an app's first failed, rolled back or aborted"
            " change to its next ready one in the same environment.",
            found.restore_seconds,
            found.restore_count,
        ),
    ):
        total = Gauge(f"{name}_sum", f"{documentation} Sum.", labels, registry=registry)
        count = Gauge(f"{name}_count", f"{documentation} Count.", labels, registry=registry)
        for key, n in counts.items():
            total.labels(*key).set(sums[key])
            count.labels(*key).set(n)
