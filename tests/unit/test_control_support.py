"""Shared helpers (not tests) for the control plane's unit tests: a plane on a temporary SQLite
database and a local store, an app source, and Flux events signed like a cluster signs them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import gitea_support
from fjord.control import (
    ControlPlane,
    ControlSettings,
    apps,
    clusters,
    credentials,
    events,
    queries,
    system_actor,
)
from fjord.control.views import DeploymentView
from fjord.control.worker import drain
from fjord.devcluster.gitea import SeededRepo
from fjord.spec import PlatformConfig, default_platform
from fjord.spec.platform import IngressRouting

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN = system_actor("alice")
CLUSTER = "ttd.tt02.tt02-1"
PROD_CLUSTER = "ttd.production.production-1"


def demo_platform() -> PlatformConfig:
    return default_platform().model_copy(update={"routing": IngressRouting(flavour="ingress")})


def settings(tmp_path: Path, **overrides: Any) -> ControlSettings:
    values: dict[str, Any] = {"data_dir": tmp_path / "data", "platform": demo_platform()}
    values.update(overrides)
    return ControlSettings(**values)


@asynccontextmanager
async def opened(config: ControlSettings) -> AsyncIterator[ControlPlane]:
    plane = await ControlPlane.open(config)
    try:
        yield plane
    finally:
        await plane.close()


# A clone URL for tests that register an app but never build it (nothing fetches it).
UNUSED_REPO = "http://gitea.invalid/ttd/skjema.git"


def app_repo(org: str = "ttd", example: str = "platform-app", name: str = "skjema") -> str:
    """A fresh repository in the session's real Gitea holding ``example`` (tagged v1.0.0)."""
    return gitea_support.shared().push_app(org, example, name=name).clone_url


async def with_app(
    plane: ControlPlane, tmp_path: Path, repo: SeededRepo | None = None
) -> dict[str, str]:
    """Register ttd/skjema (``repo``, by default a fresh repository in the session's Gitea; the
    org's read token set) and bootstrap both ttd clusters; returns cluster id → HMAC token."""
    gitea = gitea_support.shared()
    await credentials.set_credential(plane, ADMIN, "ttd", gitea.tokens["ttd"])
    await apps.create_app(plane, ADMIN, "ttd/skjema", repo.clone_url if repo else app_repo())
    tokens = {}
    for env, name in (("tt02", "tt02-1"), ("production", "production-1")):
        await clusters.bootstrap(plane, ADMIN, "ttd", env, name)
        cid = f"ttd.{env}.{name}"
        tokens[cid] = await clusters.cluster_token(plane, ADMIN, cid)
    return tokens


def event_body(
    *,
    kind: str = "Kustomization",
    namespace: str = "ttd-skjema",
    name: str = "skjema",
    severity: str = "info",
    reason: str = "ReconciliationSucceeded",
    message: str = "Reconciliation finished in 2s, next run in 10m0s",
    revision: str | None = None,
    timestamp: str = "2026-01-01T00:00:00Z",
) -> bytes:
    metadata = {"revision": revision} if revision else {}
    return json.dumps(
        {
            "involvedObject": {"kind": kind, "namespace": namespace, "name": name},
            "severity": severity,
            "timestamp": timestamp,
            "reason": reason,
            "message": message,
            "metadata": metadata,
            "reportingController": "kustomize-controller",
        }
    ).encode()


async def report(
    plane: ControlPlane, token: str, body: bytes, cluster: str = CLUSTER
) -> events.IngestResult:
    return await events.ingest(plane, cluster, body, events.sign(token, body))


async def settle(plane: ControlPlane, request: Awaitable[DeploymentView]) -> DeploymentView:
    """Make the request, let a worker in this process run what is claimable, read the result."""
    view = await request
    await drain(plane)
    return await queries.get_deployment(plane, ADMIN, view.id)
