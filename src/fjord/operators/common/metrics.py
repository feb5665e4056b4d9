"""Prometheus metrics of an operator, on an explicitly passed registry, served on loopback."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server


@dataclass(frozen=True)
class OperatorMetrics:
    registry: CollectorRegistry
    reconciles: Counter
    errors: Counter
    api_requests: Counter
    api_writes: Counter
    duration: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> OperatorMetrics:
        return cls(
            registry=registry,
            reconciles=Counter(
                "fjord_operator_reconciles",
                "Reconciles by operator and result (ok, noop, transient, permanent).",
                ["operator", "result"],
                registry=registry,
            ),
            errors=Counter(
                "fjord_operator_errors",
                "Reconcile errors by operator and reason.",
                ["operator", "reason"],
                registry=registry,
            ),
            api_requests=Counter(
                "fjord_operator_api_requests",
                "Kubernetes API requests made by reconcilers (not kopf's watches).",
                ["operator", "verb"],
                registry=registry,
            ),
            api_writes=Counter(
                "fjord_operator_api_writes",
                "Kubernetes API writes (create, patch, delete) made by reconcilers.",
                ["operator", "verb"],
                registry=registry,
            ),
            duration=Histogram(
                "fjord_operator_reconcile_seconds",
                "Duration of reconciles.",
                ["operator"],
                registry=registry,
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            ),
        )


def serve(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> None:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread."""
    start_http_server(port, addr=host, registry=registry)
