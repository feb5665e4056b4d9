"""What a reconcile returns, and the retry schedule after failures (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    """``requeue_after``: seconds until the object must be reconciled again (None: only on change).

    ``writes`` counts the Kubernetes writes the reconcile made (0 for a no-op), for metrics.
    """

    requeue_after: float | None = None
    writes: int = 0


def backoff(attempt: int, *, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential backoff: ``base * 2**(attempt-1)`` seconds, at most ``cap`` (attempt >= 1)."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))


def earliest(*delays: float | None) -> float | None:
    """The smallest of the given delays, ignoring None."""
    present = [d for d in delays if d is not None]
    return max(0.0, min(present)) if present else None
