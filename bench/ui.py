"""Web UI benchmark; prints JSON.

* the overview page (``GET /``: the first 100 apps × environments × clusters, and a search)
  with ``--apps`` apps (default 1000) × 3 environments × 2 clusters, each environment with a
  finished deployment: server time over loopback (median, p95); the whole matrix through the
  API (``/api/status``, what ``fjord status`` reads); the app page and its live fragment;
* from a signed Flux event reaching the control plane (its POST answered) to an open app page
  in headless Chromium showing it, while a deployment runs (the page polls every second) and
  while none does (every two seconds).

``fjord serve`` runs in its own process (SQLite), as in ``bench/control.py``.

    .venv/bin/python bench/ui.py [--apps 1000] [--requests 20] [--events 10]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2
import yaml
from playwright.async_api import Page, async_playwright
from sqlalchemy import create_engine, insert

from control import served  # bench/control.py (this directory): fjord serve in its own process
from fjord.api.client import FjordClient
from fjord.control import ControlPlane, ControlSettings, Role, clusters, events, system_actor
from fjord.control.models import (
    App,
    Cluster,
    ClusterApp,
    Deployment,
    DeploymentCluster,
    Environment,
    Org,
    Release,
)
from fjord.control.tokens import create_token
from fjord.spec import default_platform
from fjord.spec.platform import Cluster as ClusterConfig
from fjord.spec.platform import Environment as EnvironmentConfig
from fjord.spec.platform import IngressRouting

ADMIN = system_actor("bench")
ENVIRONMENTS = ("at22", "tt02", "production")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
FIRST = "ttd.tt02.tt02-1"
LIVE_APP = 1  # app0000: its tt02 deployment is left progressing for the event latency


def platform() -> Any:
    base = default_platform().model_copy(update={"routing": IngressRouting(flavour="ingress")})
    names = {e: [ClusterConfig(name=f"{e}-{i}") for i in (1, 2)] for e in ENVIRONMENTS}
    orgs = {k: v.model_copy(update={"clusters": names}) for k, v in base.orgs.items()}
    return base.model_copy(
        update={"orgs": orgs, "environments": [EnvironmentConfig(name=e) for e in ENVIRONMENTS]}
    )


def digest_of(release_id: int) -> str:
    return f"sha256:{release_id:064x}"


async def seed(settings: ControlSettings, apps: int) -> None:
    """Apps with one release each, deployed and ready in every environment's two clusters."""
    plane = await ControlPlane.open(settings)  # migrates and loads the catalogue
    await plane.close()
    engine = create_engine(settings.database.replace("sqlite+aiosqlite://", "sqlite://", 1))
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        org_id = conn.execute(Org.__table__.select().where(Org.name == "ttd")).first()[0]  # type: ignore[index]
        envs = {r.name: r.id for r in conn.execute(Environment.__table__.select())}
        cluster_rows = list(
            conn.execute(Cluster.__table__.select().where(Cluster.org_id == org_id))
        )
        source = "http://gitea.invalid/ttd/app.git"
        conn.execute(
            insert(App),
            [
                {"id": a, "org_id": org_id, "name": f"app{a - 1:04d}", "source": source}
                | {"created_at": now}
                for a in range(1, apps + 1)
            ],
        )
        conn.execute(
            insert(Release),
            [
                {
                    "id": a,
                    "app_id": a,
                    "digest": digest_of(a),
                    "source": source,
                    "revision": f"main@sha1:{uuid.uuid4().hex}",
                    "config_version": 0,
                    "builder": "fjord/bench",
                    "environments": list(ENVIRONMENTS),
                    "files": {},
                    "config": {},
                    "created_at": now,
                }
                for a in range(1, apps + 1)
            ],
        )
        deployments, states, cells = [], [], []
        for a in range(1, apps + 1):
            for env_name, env_id in envs.items():
                live = a == LIVE_APP and env_name == "tt02"
                deployments.append(
                    {
                        "id": len(deployments) + 1,
                        "app_id": a,
                        "environment_id": env_id,
                        "release_id": a,
                        "kind": "deploy",
                        "state": "progressing" if live else "ready",
                        "requested_by": "bench",
                        "created_at": now,
                        "updated_at": now,
                        "finished_at": None if live else now,
                    }
                )
                for c in cluster_rows:
                    if c.environment_id != env_id:
                        continue
                    revision = f"{env_name}@{digest_of(a)}"
                    states.append(
                        {
                            "deployment_id": len(deployments),
                            "cluster_id": c.id,
                            "state": "pending" if live else "ready",
                            "revision": revision,
                            "updated_at": now,
                        }
                    )
                    cells.append(
                        {
                            "cluster_id": c.id,
                            "app_id": a,
                            "ready": None if live else True,
                            "applied_revision": None if live else revision,
                            "applied_digest": None if live else digest_of(a),
                            "updated_at": now,
                        }
                    )
        conn.execute(insert(Deployment), deployments)
        conn.execute(insert(DeploymentCluster), states)
        conn.execute(insert(ClusterApp), cells)
    engine.dispose()


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
        "samples": len(ordered),
    }


async def page_times(url: str, token: str, requests: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with httpx2.AsyncClient(base_url=url, timeout=120) as http:
        signed_in = await http.post("/ui/login", data={"token": token})
        assert signed_in.status_code == 303, signed_in.text
        for name, path in (
            ("overview", "/"),
            ("overview_search", "/?q=app09"),
            ("api_status_every_app", "/api/status"),
            ("app_page", "/ui/apps/ttd/app0001"),
            ("live_fragment", "/ui/apps/ttd/app0001/live"),
        ):
            samples = []
            for _ in range(requests):
                start = time.perf_counter()
                response = await http.get(path, headers={"Authorization": f"Bearer {token}"})
                samples.append(time.perf_counter() - start)
                assert response.status_code == 200, (path, response.status_code)
            out[name] = percentiles(samples) | {"bytes": len(response.content)}
    return out


async def flux(
    url: str, cluster: str, token: str, reason: str, message: str, severity: str = "info"
) -> None:
    """A signed Flux event about app0000 in ``cluster``, as its notification-controller posts it."""
    body = json.dumps(
        {
            "involvedObject": {
                "kind": "Kustomization",
                "namespace": "ttd-app0000",
                "name": "app0000",
            },
            "severity": severity,
            "reason": reason,
            "message": message,
            "metadata": {"revision": f"tt02@{digest_of(LIVE_APP)}"},
        }
    ).encode()
    async with FjordClient.remote(url, None) as api:
        ingested = await api.flux_event(cluster, body, events.sign(token, body))
    assert ingested.recorded


async def event_to_page(
    page: Page, url: str, token: str, count: int, *, running: bool
) -> dict[str, Any]:
    """While a deployment runs, Flux's news appears in its progress (timeline); otherwise a
    failure appears in the cluster's cell."""
    samples = []
    where = "#live-progress" if running else "#live-clusters-tt02"
    for i in range(count):
        message = f"bench {i} {uuid.uuid4().hex[:8]}"
        if running:
            await flux(url, FIRST, token, "Progressing", message)
        else:
            await flux(url, FIRST, token, "HealthCheckFailed", message, severity="error")
        start = time.perf_counter()
        await page.locator(where).get_by_text(message).first.wait_for(timeout=60_000)
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


async def latency(url: str, token: str, tokens: dict[str, str], count: int) -> dict[str, Any]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await chromium.new_page()
            await page.goto(url + "/ui/login")
            await page.fill("#token", token)
            await page.click("#sign-in")
            await page.goto(url + "/ui/apps/ttd/app0000")
            running = await event_to_page(page, url, tokens[FIRST], count, running=True)
            # Finish the deployment: the page then polls every two seconds.
            for cluster, flux_token in tokens.items():
                await flux(url, cluster, flux_token, "ReconciliationSucceeded", "applied")
            await page.locator(
                '#live-progress article[data-progress-env="tt02"][data-state="ready"]'
            ).wait_for(timeout=60_000)
            idle = await event_to_page(page, url, tokens[FIRST], count, running=False)
        finally:
            await chromium.close()
    return {"deployment_running": running, "nothing_running": idle}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--events", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fjord-bench-ui-"))
    try:
        config = platform()
        platform_file = work / "platform.yaml"
        platform_file.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True)))
        os.environ["FJORD_PLATFORM"] = str(platform_file)
        settings = ControlSettings(data_dir=work / "data", platform=config)
        seed_start = time.perf_counter()
        await seed(settings, args.apps)
        plane = await ControlPlane.open(settings)
        try:
            token = (await create_token(plane, ADMIN, "bench", {"ttd": Role.app_admin})).token
            flux_tokens = {}
            for name in ("tt02-1", "tt02-2"):
                await clusters.bootstrap(plane, ADMIN, "ttd", "tt02", name)
                cluster_id = f"ttd.tt02.{name}"
                flux_tokens[cluster_id] = await clusters.cluster_token(plane, ADMIN, cluster_id)
        finally:
            await plane.close()
        report: dict[str, Any] = {
            "cpus": os.cpu_count(),
            "apps": args.apps,
            "environments": len(ENVIRONMENTS),
            "clusters_per_environment": 2,
            "seed_seconds": round(time.perf_counter() - seed_start, 1),
        }
        with served(settings) as url:
            report["pages"] = await page_times(url, token, args.requests)
            report["flux_event_to_open_page"] = await latency(url, token, flux_tokens, args.events)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    asyncio.run(main())
