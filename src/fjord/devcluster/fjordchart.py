"""fjord's own Helm chart (``deploy/charts/fjord``), linted and rendered with real Helm in-process
(helm-python-sdk, the library the renderer uses for apps' charts): no helm binary needed.

:func:`objects` gives what ``helm install`` would apply, CRDs first, so the tests can check every
object against the Kubernetes schemas and apply them to a real cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import helm_python
import yaml

CHART = Path(__file__).resolve().parents[3] / "deploy" / "charts" / "fjord"
KUBERNETES = "1.36"
_ERROR, _WARNING = 3, 2


def lint(values: Mapping[str, Any] | None = None) -> list[str]:
    """``helm lint --strict``'s warnings and errors (empty: clean)."""
    report = helm_python.lint(
        CHART, dict(values or {}), strict=True, kube_version=f"v{KUBERNETES}.0"
    )
    found = [
        f"{m['path']}: {m['error'].strip()}"
        for m in report.get("messages", [])
        if m["severity"] >= _WARNING
    ]
    return found + [e.strip() for e in report.get("errors", []) if e.strip() not in found]


def objects(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "fjord",
    namespace: str = "fjord-system",
) -> list[dict[str, Any]]:
    """The CRDs, then every rendered object, in template order."""
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(dict(values or {}))
        rendered = chart.render(
            dict(values or {}), name=release, namespace=namespace, is_install=True
        )
    found = [
        doc
        for path in sorted(CHART.glob("crds/*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
    ]
    for _, text in sorted(rendered.items()):
        found += [doc for doc in yaml.safe_load_all(text) if doc]
    return found
