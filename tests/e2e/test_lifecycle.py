"""An app's life after the first deploy, on the platform from ``fjord dev up``.

* a dynamic-config change of the Maskinporten scopes → a new release → the operator updates the
  client in the emulator;
* a broken release fails with Flux's own message, in the CLI, the API and the web UI: a Deployment
  that never becomes Available, and a manifest that passes every offline check but the
  apiserver refuses;
* rollback in production → the previous release runs again in both production clusters.

Every test registers its own app (a copy of ``examples/platform-app`` under another name), so
the tests neither touch the sample apps nor each other.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from e2e_support import REPO_ROOT, Platform, dumped, status_of
from playwright.async_api import Browser, async_playwright

from fjord.api.client import FjordClient
from fjord.kube import condition, is_true

pytestmark = [pytest.mark.cluster, pytest.mark.flux, pytest.mark.e2e]

TT02 = "ttd.tt02.tt02-1"
PRODUCTION = ("ttd.production.prod-1", "ttd.production.prod-2")
KUSTOMIZATION = ("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
MASKINPORTEN_CLIENT = ("fjord.dev/v1alpha1", "MaskinportenClient")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# ---- helpers ---------------------------------------------------------------------------------


async def register(
    platform: Platform, client: FjordClient, tmp_path: Path, app: str, **changes: Any
) -> Path:
    """Register ``ttd/{app}``: the platform-app example under another name (no database), in a
    repository of its own in the platform's Gitea."""
    source = tmp_path / app
    shutil.copytree(REPO_ROOT / "examples" / "platform-app", source)
    spec = yaml.safe_load((source / "fjord.yaml").read_text())
    spec["app"] = app
    spec.pop("postgresql")  # fewer moving parts; the sample app covers the database
    spec.update(changes)
    (source / "fjord.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    await client.create_app(f"ttd/{app}", platform.push_app(f"ttd/{app}", source))
    return source


async def deploy(
    platform: Platform, client: FjordClient, app: str, env: str = "tt02"
) -> dict[str, Any]:
    started = await client.deploy(app, env)
    return await platform.wait(client, started.id)


async def set_config(client: FjordClient, app: str, values: Any, reason: str) -> Any:
    """A config change on top of the latest version (the test owns the app)."""
    current = await client.get_config(app)
    expected = current.version if current else 0
    return dumped(await client.set_config(app, values, reason, expected_version=expected))


async def eventually(
    probe: Callable[[], Any], until: Callable[[Any], bool], timeout: float = 180.0
) -> Any:
    """Call ``probe`` until ``until(result)``; the last result goes into the failure."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if until(result):
            return result
        assert time.monotonic() < deadline, f"never held; last seen: {result!r}"
        await asyncio.sleep(1.0)


def emulator_clients(platform: Platform) -> dict[str, dict[str, Any]]:
    dump = httpx2.get(f"{platform.info['emulator_url']}test/dump", timeout=10).json()
    return {c["client_id"]: c for c in dump["clients"]}


def words(text: str) -> str:
    return " ".join(text.split())


def environment(status: dict[str, Any], env: str) -> dict[str, Any]:
    found: dict[str, Any] = next(e for e in status["environments"] if e["environment"] == env)
    return found


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def ui_app_page(platform: Platform, browser: Browser, app: str) -> tuple[str, str]:
    """Sign in to the web UI with the admin token; the app page's tt02 row and history."""
    page = await browser.new_page()
    try:
        await page.goto(platform.url + "/")
        assert page.url.endswith("/ui/login")
        await page.fill("#token", platform.token)
        await page.click("#sign-in")
        await page.click(f"text={app}")
        assert page.url.endswith(f"/ui/apps/{app}")
        row = await page.inner_text('#environments tr[data-env="tt02"]')
        history = await page.inner_text("#history tbody tr >> nth=0")
        return row, history
    finally:
        await page.close()


# ---- 1. dynamic config → new release → the client's scopes change in the emulator ------------


async def test_scope_change_reaches_the_maskinporten_emulator(
    platform: Platform, admin: FjordClient, tmp_path: Path
) -> None:
    app, name, namespace = "ttd/e2e-scopes", "e2e-scopes", "ttd-e2e-scopes"
    before = ["altinn:serviceowner/instances.read"]
    after = ["altinn:serviceowner/instances.read", "ttd:e2e/scopes.write", "ttd:e2e/extra"]
    await register(platform, admin, tmp_path, name, maskinporten={"scopes": before})

    v1 = await deploy(platform, admin, app)
    assert v1["state"] == "ready", v1
    async with platform.kube(TT02) as kube:
        client = await kube.wait_for(
            *MASKINPORTEN_CLIENT, name, namespace, until=lambda o: is_true(o, "Ready"), timeout=120
        )
        assert client is not None
        assert client["spec"]["scopes"] == before
        secret = await kube.get("v1", "Secret", f"{name}-maskinporten", namespace)
        assert secret is not None
    client_id = base64.b64decode(secret["data"]["MASKINPORTEN_CLIENT_ID"]).decode()
    assert set(emulator_clients(platform)[client_id]["scopes"]) == set(before)

    # The scopes change in the control plane's dynamic config, not in git.
    config = await set_config(
        admin, app, {"common": {"maskinporten": {"scopes": after}}}, "e2e: more scopes"
    )
    v2 = await deploy(platform, admin, app)
    assert v2["state"] == "ready", v2
    assert v2["digest"] != v1["digest"]  # a new release …
    assert v2["revision"] == v1["revision"]  # … of the same source
    assert v2["config_version"] == config["version"] == (v1["config_version"] or 0) + 1
    assert [c["revision"] for c in v2["clusters"]] == [f"tt02@{v2['digest']}"]

    async with platform.kube(TT02) as kube:
        kustomization = await kube.get(*KUSTOMIZATION, name, namespace)
        assert kustomization is not None
        assert kustomization["status"]["lastAppliedRevision"] == f"tt02@{v2['digest']}"
        client = await kube.wait_for(
            *MASKINPORTEN_CLIENT,
            name,
            namespace,
            until=lambda o: o is not None and o["spec"]["scopes"] == after,
        )
        assert client is not None
    # The operator updates the same client at Digdir (the emulator): no new client id …
    registered = await eventually(
        lambda: asyncio.to_thread(lambda: emulator_clients(platform).get(client_id)),
        lambda c: c is not None and set(c["scopes"]) == set(after),
    )
    assert registered["client_id"] == client_id

    # … and the app's Secret tells the pod the new scopes, with the same client.
    async def delivered() -> dict[str, str]:
        async with platform.kube(TT02) as kube:
            secret = await kube.get("v1", "Secret", f"{name}-maskinporten", namespace)
        assert secret is not None
        return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}

    data = await eventually(
        delivered, lambda d: set(d["MASKINPORTEN_SCOPES"].split()) == set(after)
    )
    assert data["MASKINPORTEN_CLIENT_ID"] == client_id


# ---- 2. a broken release fails with Flux's own message, in CLI, API and UI ----------------------


async def assert_failed_everywhere(
    platform: Platform,
    admin: FjordClient,
    browser: Browser,
    app: str,
    cli: Any,
    flux_says: str,
) -> dict[str, Any]:
    """CLI exit 1 with Flux's message; the API's reason; the UI's app page.

    Compared word by word: Flux ends some messages with a newline, the CLI's table wraps lines.
    """
    says = words(flux_says)
    assert cli.returncode == 1, cli.stderr
    shown: dict[str, Any] = json.loads(cli.stdout)
    assert shown["state"] == "failed"
    assert shown["reason"].startswith(f"{TT02}: ")
    assert says in words(shown["reason"])
    assert says in words(cli.stderr)

    deployment = dumped(await admin.get_deployment(shown["id"]))
    assert deployment["state"] == "failed"
    assert deployment["reason"] == shown["reason"]
    status = await status_of(admin, app)
    tt02 = environment(status, "tt02")
    assert tt02["deployment"]["id"] == shown["id"]
    assert says in words(tt02["deployment"]["reason"])

    row, history = await ui_app_page(platform, browser, app)
    assert says in words(row)
    assert "failed" in history
    assert says in words(history)
    return shown


@pytest.mark.timeout(600)  # Flux gives up on health checks after the Kustomization timeout
async def test_a_deployment_that_never_becomes_available_fails_with_fluxs_message(
    platform: Platform, admin: FjordClient, browser: Browser, tmp_path: Path
) -> None:
    app, name, namespace = "ttd/e2e-stuck", "e2e-stuck", "ttd-e2e-stuck"
    await register(platform, admin, tmp_path, name)
    # No kwok node has a tebibyte of memory: the pods stay Pending, the Deployment unavailable.
    huge = {"requests": {"memory": "1Ti"}, "limits": {"memory": "1Ti"}}
    await set_config(admin, app, {"environments": {"tt02": {"resources": huge}}}, "e2e: 1Ti")

    cli = platform.cli("deploy", app, "--env", "tt02", "-o", "json")

    async with platform.kube(TT02) as kube:
        kustomization = await kube.get(*KUSTOMIZATION, name, namespace)
        workload = await kube.get("apps/v1", "Deployment", name, namespace)
    assert kustomization is not None
    assert workload is not None  # applied, but never Available
    assert not is_true(workload, "Available")
    ready = condition(kustomization, "Ready")
    assert ready is not None
    assert ready["status"] == "False"
    assert ready["reason"] == "HealthCheckFailed"
    # Flux's health-check message, exactly as the cluster's Kustomization states it.
    assert f"Deployment/{namespace}/{name}" in ready["message"]
    shown = await assert_failed_everywhere(platform, admin, browser, app, cli, ready["message"])
    assert shown["clusters"][0]["state"] == "failed"


async def test_a_manifest_only_the_apiserver_refuses_fails_with_fluxs_message(
    platform: Platform, admin: FjordClient, browser: Browser, tmp_path: Path
) -> None:
    app, name, namespace = "ttd/e2e-invalid", "e2e-invalid", "ttd-e2e-invalid"
    await register(platform, admin, tmp_path, name)
    v1 = await deploy(platform, admin, app)
    assert v1["state"] == "ready", v1
    # The route path is a valid spec value and the Ingress is valid against Kubernetes'
    # OpenAPI schema, but the apiserver refuses '//' in a Prefix path: only the cluster knows.
    await set_config(
        admin, app, {"common": {"routing": {"path": "/ttd//e2e-invalid"}}}, "e2e: bad path"
    )

    cli = platform.cli("deploy", app, "--env", "tt02", "-o", "json")

    async with platform.kube(TT02) as kube:
        kustomization = await kube.get(*KUSTOMIZATION, name, namespace)
        workload = await kube.get("apps/v1", "Deployment", name, namespace)
        ingress = await kube.get("networking.k8s.io/v1", "Ingress", name, namespace)
    assert kustomization is not None
    ready = condition(kustomization, "Ready")
    assert ready is not None, kustomization.get("status")
    assert ready["status"] == "False", ready
    # Flux's dry-run refuses the whole revision: nothing of it is applied, v1 keeps running.
    assert kustomization["status"]["lastAppliedRevision"] == f"tt02@{v1['digest']}"
    assert workload is not None
    assert is_true(workload, "Available")
    assert ingress is not None
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/ttd/e2e-invalid"
    assert f"Ingress/{namespace}/{name}" in ready["message"]
    assert "must not contain '//'" in ready["message"]
    await assert_failed_everywhere(platform, admin, browser, app, cli, ready["message"])
    # The control plane agrees: the cluster still runs v1, its latest outcome is the refusal.
    status = await status_of(admin, app)
    (cell,) = environment(status, "tt02")["clusters"]
    assert cell["revision"] == f"tt02@{v1['digest']}"
    assert cell["ready"] is False
    assert "must not contain '//'" in cell["message"]


# ---- 3. rollback → the previous release runs again in every production cluster -----------------


async def promote_and_approve(platform: Platform, admin: FjordClient, app: str) -> dict[str, Any]:
    # Four eyes in production: another admin than the requester approves.
    second = (
        await admin.create_token(f"e2e-approver-{uuid.uuid4().hex[:6]}", {"*": "platform-admin"})
    ).token
    async with platform.api(second) as approver:
        promo = await platform.wait(approver, (await approver.promote(app, "production")).id)
        assert promo["state"] == "awaiting_approval"
    await admin.approve(promo["id"])
    return await platform.wait(admin, promo["id"])


async def running_in_production(
    platform: Platform, admin: FjordClient, app: str, name: str, namespace: str
) -> dict[str, tuple[str | None, str | None]]:
    """Per production cluster: (the API's revision, the Kustomization's lastAppliedRevision)."""
    status = await status_of(admin, app)
    cells = {c["cluster"]: c for c in environment(status, "production")["clusters"]}
    assert set(cells) == set(PRODUCTION)
    found = {}
    for cid in PRODUCTION:
        async with platform.kube(cid) as kube:
            kustomization = await kube.get(*KUSTOMIZATION, name, namespace)
        applied = (kustomization or {}).get("status", {}).get("lastAppliedRevision")
        found[cid] = (cells[cid]["revision"] if cells[cid]["ready"] else None, applied)
    return found


async def test_rollback_runs_the_previous_release_in_every_production_cluster(
    platform: Platform, admin: FjordClient, tmp_path: Path
) -> None:
    app, name, namespace = "ttd/e2e-rollback", "e2e-rollback", "ttd-e2e-rollback"
    await register(platform, admin, tmp_path, name)

    v1 = await deploy(platform, admin, app)
    assert v1["state"] == "ready", v1
    promoted = await promote_and_approve(platform, admin, app)
    assert promoted["state"] == "ready", promoted
    assert promoted["digest"] == v1["digest"]

    await set_config(admin, app, {"common": {"env": {"RELEASE": "two"}}}, "e2e: v2")
    v2 = await deploy(platform, admin, app)
    assert v2["state"] == "ready", v2
    assert v2["digest"] != v1["digest"]
    promoted = await promote_and_approve(platform, admin, app)
    assert promoted["state"] == "ready", promoted
    assert promoted["digest"] == v2["digest"]
    v2_revision = f"production@{v2['digest']}"
    running = await running_in_production(platform, admin, app, name, namespace)
    assert running == dict.fromkeys(PRODUCTION, (v2_revision, v2_revision))

    # Roll production back (default: the last ready release before the current one).
    back = platform.cli("rollback", app, "--env", "production", "-o", "json")
    assert back.returncode == 0, back.stderr
    rollback = json.loads(back.stdout)
    assert rollback["kind"] == "rollback"
    assert rollback["state"] == "ready"
    assert rollback["digest"] == v1["digest"]
    v1_revision = f"production@{v1['digest']}"
    assert sorted((c["cluster"], c["revision"]) for c in rollback["clusters"]) == [
        (cid, v1_revision) for cid in PRODUCTION
    ]
    running = await running_in_production(platform, admin, app, name, namespace)
    assert running == dict.fromkeys(PRODUCTION, (v1_revision, v1_revision))
    # The previous release's pod template runs again: RELEASE=two is gone in both clusters.
    for cid in PRODUCTION:
        async with platform.kube(cid) as kube:
            workload = await kube.get("apps/v1", "Deployment", name, namespace)
        assert workload is not None
        assert is_true(workload, "Available")
        env = workload["spec"]["template"]["spec"]["containers"][0].get("env", [])
        assert "RELEASE" not in {e["name"] for e in env}, cid
    # tt02 was not touched.
    status = await status_of(admin, app)
    assert environment(status, "tt02")["deployment"]["digest"] == v2["digest"]
