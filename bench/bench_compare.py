"""Side-by-side results of one benchmark run: baseline and candidate, and their ratios."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def compare(
    baseline: Mapping[str, Any], candidate: Mapping[str, Any], keys: Iterable[str]
) -> dict[str, Any]:
    """Both result documents, and ``candidate / baseline`` for each numeric key in ``keys``."""
    ratios = {}
    for key in keys:
        old, new = baseline.get(key), candidate.get(key)
        if isinstance(old, int | float) and isinstance(new, int | float) and old:
            ratios[key] = round(new / old, 3)
    return {"baseline": dict(baseline), "candidate": dict(candidate), "ratios": ratios}
