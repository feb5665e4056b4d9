"""The sample apps really run: served by Traefik at ``{org}.apps.{domain}/{org}/{app}``, using the
Maskinporten token, database and cache credentials the operators minted for them.

Each request goes to Traefik on loopback with the app's Host header; Traefik sends it to the
Pod on the cluster's real node, and the app answers with what it used (never a secret value).
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from e2e_support import REPO_ROOT, Platform

pytestmark = [pytest.mark.cluster, pytest.mark.flux, pytest.mark.e2e]

TT02 = "ttd.tt02.tt02-1"


async def route(platform: Platform, cluster_id: str, app: str) -> tuple[str, str]:
    """(URL through Traefik, Host header) of an app, from its Ingress in the cluster."""
    org, name = app.split("/")
    async with platform.kube(cluster_id) as kube:
        ingress = await kube.get("networking.k8s.io/v1", "Ingress", name, f"{org}-{name}")
    assert ingress is not None, app
    rule = ingress["spec"]["rules"][0]
    ingress_url = platform.cluster(cluster_id).ingress_url
    assert ingress_url is not None
    return f"{ingress_url}{rule['http']['paths'][0]['path']}", rule["host"]


async def answer(url: str, host: str) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.get(url, headers={"Host": host})


async def served(url: str, host: str, until: Any, timeout: float = 120.0) -> dict[str, Any]:
    """The app's answer once ``until(body)`` holds (a rollout takes a few seconds)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        response = await answer(url, host)
        if response.status_code == 200:
            last = response.json()
            if until(last):
                return dict(last)
        else:
            last = (response.status_code, response.text[:300])
        await asyncio.sleep(1.0)
    raise AssertionError(f"{url} (Host {host}) never answered as expected; last: {last}")


def secret_values(secret: dict[str, Any]) -> list[str]:
    return [base64.b64decode(v).decode() for v in (secret.get("data") or {}).values()]


@pytest.mark.parametrize(
    ("app", "cluster_id", "secret"),
    [
        ("ttd/skjema", TT02, "skjema-pg-forms"),
        ("digdir/varsel", "digdir.tt02.tt02-1", "varsel-redis"),
    ],
)
async def test_each_sample_app_answers_through_traefik_with_what_it_used(
    platform: Platform, app: str, cluster_id: str, secret: str
) -> None:
    url, host = await route(platform, cluster_id, app)
    assert host == f"{app.split('/')[0]}.apps.fjord.localhost"
    response = await answer(url, host)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["app"] == app.split("/")[1]
    assert body["maskinporten"]["obtained"] is True
    assert body["maskinporten"]["scope"]  # the scopes the operator registered
    async with platform.kube(cluster_id) as kube:
        credentials = await kube.get("v1", "Secret", secret, f"{app.replace('/', '-')}")
    assert credentials is not None
    data = {k: base64.b64decode(v).decode() for k, v in credentials["data"].items()}
    if "database" in data:
        assert body["postgresql"] == [
            {
                "database": data["database"],
                "query": "SELECT current_user, current_database()",
                "user": data["user"],
                "current_database": data["database"],
            }
        ]
    else:
        assert body["redis"]["user"] == data["username"]
        assert body["redis"]["key"].startswith(data["keyPrefix"])
        assert body["redis"]["value"] >= 1
    # What the app says it used never includes a secret value.
    for value in secret_values(credentials):
        if len(value) >= 12:
            assert value not in response.text
    # The other org's host is not routed by this org's cluster.
    other = await answer(url, "digdir.apps.fjord.localhost" if "ttd" in app else "ttd.apps.x")
    assert other.status_code == 404


async def test_a_new_release_is_served_and_a_rollback_serves_the_old_one_again(
    platform: Platform, admin: httpx2.AsyncClient, tmp_path: Path
) -> None:
    app, name = "ttd/e2e-served", "e2e-served"
    source = tmp_path / name
    shutil.copytree(REPO_ROOT / "examples" / "platform-app", source)
    spec = yaml.safe_load((source / "fjord.yaml").read_text())
    spec["app"] = name
    spec.pop("postgresql")
    (source / "fjord.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    created = await admin.post("/api/apps", json={"name": app, "source": str(source)})
    assert created.status_code == 201, created.text

    async def deploy() -> dict[str, Any]:
        started = await admin.post(f"/api/apps/{app}/deployments", json={"environment": "tt02"})
        assert started.status_code == 201, started.text
        return await platform.wait(admin, started.json()["id"])

    v1 = await deploy()
    assert v1["state"] == "ready", v1
    url, host = await route(platform, TT02, app)
    first = await served(url, host, lambda b: b.get("greeting") == "hello")
    assert first["maskinporten"]["obtained"] is True

    changed = await admin.put(
        f"/api/apps/{app}/config",
        json={"values": {"common": {"env": {"GREETING": "second release"}}}, "reason": "e2e"},
    )
    assert changed.status_code == 200, changed.text
    v2 = await deploy()
    assert v2["state"] == "ready", v2
    await served(url, host, lambda b: b.get("greeting") == "second release")

    back = platform.cli("rollback", app, "--env", "tt02", "-o", "json")
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["digest"] == v1["digest"]
    await served(url, host, lambda b: b.get("greeting") == "hello")


async def test_an_unpullable_image_and_a_crash_loop_fail_with_the_pods_reason(
    platform: Platform, admin: httpx2.AsyncClient, tmp_path: Path
) -> None:
    app, name = "ttd/e2e-broken", "e2e-broken"
    source = tmp_path / name
    shutil.copytree(REPO_ROOT / "examples" / "platform-app", source)
    spec = yaml.safe_load((source / "fjord.yaml").read_text())
    spec["app"] = name
    spec.pop("postgresql")
    (source / "fjord.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    created = await admin.post("/api/apps", json={"name": app, "source": str(source)})
    assert created.status_code == 201, created.text

    async def deploy_with(values: dict[str, Any]) -> dict[str, Any]:
        changed = await admin.put(
            f"/api/apps/{app}/config", json={"values": values, "reason": "e2e"}
        )
        assert changed.status_code == 200, changed.text
        started = await admin.post(f"/api/apps/{app}/deployments", json={"environment": "tt02"})
        assert started.status_code == 201, started.text
        return await platform.wait(admin, started.json()["id"])

    v1 = await deploy_with({"common": {"env": {"GREETING": "v1"}}})
    assert v1["state"] == "ready", v1
    url, host = await route(platform, TT02, app)
    await served(url, host, lambda b: b.get("greeting") == "v1")

    missing = await deploy_with({"common": {"image": "ghcr.io/fjord-demo/no-such-image:1"}})
    assert missing["state"] == "failed", missing
    assert "no-such-image" in missing["reason"]
    assert "ErrImagePull" in missing["reason"] or "ImagePullBackOff" in missing["reason"]
    await served(url, host, lambda b: b.get("greeting") == "v1")  # v1 keeps serving

    crashing = await deploy_with({"common": {"env": {"GREETING": "v3", "PORT": "not-a-port"}}})
    assert crashing["state"] == "failed", crashing
    assert "CrashLoopBackOff" in crashing["reason"] or "Error" in crashing["reason"]
    await served(url, host, lambda b: b.get("greeting") == "v1")

    back = platform.cli("rollback", app, "--env", "tt02", "--to", v1["digest"], "-o", "json")
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["state"] == "ready"
    await served(url, host, lambda b: b.get("greeting") == "v1")
