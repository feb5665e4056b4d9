"""The web UI in headless Chromium (Debian's) against the real server: the status matrix,
history with diffs, the approve and rollback buttons with CSRF protection, and the app page
following a deployment live (no reload) from signed Flux events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from control_support import (
    CHROMIUM_ARGS,
    CLUSTER,
    PUBLISHED,
    cluster_token,
    fjord_cli,
    make_token,
    report_ready,
)
from oidc_support import screenshot
from playwright.async_api import Browser, Frame, Page, async_playwright, expect

import gitea_support
from fjord.api import ApiSettings
from fjord.api.client import FjordClient
from fjord.api.server import ApiServer
from fjord.control import ControlSettings, Role, events
from fjord.spec import default_platform
from fjord.spec.platform import IngressRouting


@pytest.fixture
def settings(tmp_path: Path) -> ControlSettings:
    platform = default_platform().model_copy(update={"routing": IngressRouting(flavour="ingress")})
    return ControlSettings(data_dir=tmp_path / "data", platform=platform)


@pytest.fixture
def server(settings: ControlSettings) -> Iterator[ApiServer]:
    with ApiServer(ApiSettings(control=settings)) as running:
        yield running


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


async def test_matrix_history_diff_approve_and_rollback_in_chromium(
    settings: ControlSettings, server: ApiServer, browser: Browser, tmp_path: Path
) -> None:
    gitea = gitea_support.shared()
    repo = gitea.push_app("ttd", "platform-app", name="skjema")
    flux_token = await cluster_token(settings)
    lead_token = await make_token(settings, "lead", {"ttd": Role.app_admin})
    async with FjordClient.remote(server.url, lead_token) as lead:
        await lead.create_app("ttd/skjema", repo.clone_url)
        await lead.set_credential("ttd", gitea.tokens["ttd"])
        first = await lead.deploy("ttd/skjema", "tt02")
        v1 = (await lead.wait_deployment(first.id, until=PUBLISHED)).model_dump()
        await report_ready(lead, flux_token, v1["digest"])
        await lead.set_config(
            "ttd/skjema",
            {"common": {"env": {"FEATURE": "on"}}},
            "feature on",
            expected_version=0,
        )
        second = await lead.deploy("ttd/skjema", "tt02")
        v2 = (await lead.wait_deployment(second.id, until=PUBLISHED)).model_dump()
        await report_ready(lead, flux_token, v2["digest"])
    # Four eyes in production: a developer asks, the lead approves in the browser.
    dev_token = await make_token(settings, "dev", {"ttd": Role.developer})
    async with FjordClient.remote(server.url, dev_token) as dev:
        promo = await dev.promote("ttd/skjema", "production")
        promo = await dev.wait_deployment(promo.id, until=("awaiting_approval",))
        assert promo.state == "awaiting_approval"

    page = await browser.new_page()
    await page.goto(server.url + "/")
    assert page.url.endswith("/ui/login")
    await page.fill("#token", "fjt_wrong")
    await page.click("#sign-in")
    assert "that token is not valid" in await page.inner_text("body")
    await page.fill("#token", lead_token)
    await page.click("#sign-in")

    # The matrix: ttd/skjema × tt02 × its cluster runs v2, ready.
    cell = page.locator(f'tr[data-app="ttd/skjema"] td[data-env="tt02"] [data-cluster="{CLUSTER}"]')
    assert f"tt02@{v2['digest']}" in await cell.inner_text()
    assert await cell.get_attribute("class") == "ready"
    prod = page.locator(
        'tr[data-app="ttd/skjema"] td[data-env="production"] [data-deployment-state]'
    )
    assert await prod.get_attribute("data-deployment-state") == "awaiting_approval"

    await page.click("text=ttd/skjema")
    history = page.locator("#history tbody tr")
    assert await history.count() == 3

    # Diff v1 → v2: the config change and the manifest line it produced.
    await page.select_option('#compare select[name="from"]', v1["digest"])
    await page.select_option('#compare select[name="to"]', v2["digest"])
    await page.click("#compare button")
    assert '"FEATURE": "on"' in await page.inner_text("#config-diff")
    assert "+        - name: FEATURE" in await page.inner_text(".manifest-diff")
    await page.go_back()

    # A forged POST without the CSRF token changes nothing.
    forged = await page.request.post(
        server.url + f"/ui/deployments/{promo.id}/approve", form={"csrf": "forged"}
    )
    assert forged.status == 403
    await page.reload()
    row = page.locator(f'#history tr[data-deployment="{promo.id}"]')
    assert await row.get_attribute("data-state") == "awaiting_approval"

    # Approve in the browser: the promotion is queued again and goes ahead.
    await row.locator("button.approve").click()
    row = page.locator(f'#history tr[data-deployment="{promo.id}"]')
    for _ in range(100):
        if await row.get_attribute("data-state") == "progressing":
            break
        await asyncio.sleep(0.1)
        await page.reload()
    assert await row.get_attribute("data-state") == "progressing"
    assert "approved by token:lead" in await row.inner_text()

    # Roll tt02 back to v1 from its history row: recorded as a new deployment.
    await page.locator(f'#history tr[data-deployment="{v1["id"]}"] button.rollback').click()
    newest = page.locator("#history tbody tr").first
    assert "rollback" in await newest.inner_text()
    assert v1["digest"].removeprefix("sha256:")[:12] in await newest.inner_text()
    await page.close()


LIVE = 60_000  # ms: how long the page may take to show what the server already knows


async def _flux(
    client: FjordClient, token: str, severity: str, reason: str, message: str, digest: str
) -> None:
    """A signed Flux event about ttd/skjema's Kustomization in the cluster, as Flux sends it."""
    body = json.dumps(
        {
            "involvedObject": {
                "kind": "Kustomization",
                "namespace": "ttd-skjema",
                "name": "skjema",
            },
            "severity": severity,
            "reason": reason,
            "message": message,
            "metadata": {"revision": f"tt02@{digest}"},
        }
    ).encode()
    ingested = await client.flux_event(CLUSTER, body, events.sign(token, body))
    assert ingested.recorded


def _count_navigations(page: Page) -> list[str]:
    """Every navigation of the page's main frame from now on (a reload would show here)."""
    seen: list[str] = []

    def navigated(frame: Frame) -> None:
        if frame == page.main_frame:
            seen.append(frame.url)

    page.on("framenavigated", navigated)
    return seen


async def test_app_page_follows_deployments_live_until_ready_and_shows_flux_failure(
    settings: ControlSettings, server: ApiServer, browser: Browser
) -> None:
    gitea = gitea_support.shared()
    repo = gitea.push_app("ttd", "platform-app", name="skjema")
    flux_token = await cluster_token(settings)
    lead_token = await make_token(settings, "lead", {"ttd": Role.app_admin})
    page = await browser.new_page()
    await page.goto(server.url + "/ui/login")
    await page.fill("#token", lead_token)
    await page.click("#sign-in")
    async with FjordClient.remote(server.url, lead_token) as lead:
        await lead.create_app("ttd/skjema", repo.clone_url)
        await lead.set_credential("ttd", gitea.tokens["ttd"])
        first = await lead.deploy("ttd/skjema", "tt02")
        await page.goto(server.url + "/ui/apps/ttd/skjema")
        navigations = _count_navigations(page)
        tt02 = page.locator('#live-progress article[data-progress-env="tt02"]')
        await expect(tt02).to_have_attribute("data-deployment", str(first.id))

        # Published: the page follows without a reload to progressing, then Flux's news.
        v1 = await lead.wait_deployment(first.id, until=PUBLISHED)
        assert v1.digest is not None
        await expect(tt02).to_have_attribute("data-state", "progressing", timeout=LIVE)
        maskinporten = page.locator(
            f'#infra tr[data-infra="tt02/{CLUSTER}/MaskinportenClient/skjema"]'
        )
        credentials = page.locator(f'#infra tr[data-infra="tt02/{CLUSTER}/AppCredentials/skjema"]')
        await expect(maskinporten).to_have_attribute("data-infra-state", "pending")
        await _flux(
            lead,
            flux_token,
            "info",
            "Progressing",
            "Health check in progress: Deployment/ttd-skjema/skjema",
            v1.digest,
        )
        await expect(tt02.locator(".timeline")).to_contain_text(
            "Progressing: Health check in progress", timeout=LIVE
        )
        await report_ready(lead, flux_token, v1.digest)
        await expect(tt02).to_have_attribute("data-state", "ready", timeout=LIVE)
        cluster = tt02.locator(f'li[data-cluster="{CLUSTER}"]')
        await expect(cluster).to_have_attribute("data-cluster-state", "ready")
        cell = page.locator(f'#live-clusters-tt02 [data-cluster="{CLUSTER}"]')
        await expect(cell).to_contain_text("ready")
        await expect(page.locator("#live-deployment-tt02")).to_contain_text("deploy: ready")
        row = page.locator(f'#history tr[data-deployment="{first.id}"]')
        await expect(row).to_have_attribute("data-state", "ready")
        await expect(page.locator("#releases tr[data-release]")).to_have_count(1)
        # Flux's health checks passed at this release: its infra resources are Ready.
        await expect(page.locator("#infra tr[data-infra-state]")).to_have_count(2)
        await expect(maskinporten).to_have_attribute("data-infra-state", "ready")
        await expect(credentials).to_have_attribute("data-infra-state", "ready")
        await screenshot(page, "app-live-ready")

        # A new release fails in the cluster: the open page shows Flux's message.
        await lead.set_config(
            "ttd/skjema", {"common": {"env": {"FEATURE": "on"}}}, "feature on", expected_version=0
        )
        second = await lead.deploy("ttd/skjema", "tt02")
        v2 = await lead.wait_deployment(second.id, until=PUBLISHED)
        assert v2.digest is not None
        await expect(tt02).to_have_attribute("data-deployment", str(second.id), timeout=LIVE)
        await expect(tt02).to_have_attribute("data-state", "progressing", timeout=LIVE)
        refused = (
            "health check failed after 30s: failed early due to stalled resources: "
            "[MaskinportenClient/ttd-skjema/skjema status: 'Failed']"
        )
        await _flux(lead, flux_token, "error", "HealthCheckFailed", refused, v2.digest)
        await expect(tt02).to_have_attribute("data-state", "failed", timeout=LIVE)
        await expect(cluster).to_have_attribute("data-cluster-state", "failed")
        await expect(cluster.locator(".flux-message")).to_have_text(refused)
        await expect(
            page.locator(f'#live-clusters-tt02 [data-cluster="{CLUSTER}"]')
        ).to_contain_text(refused)
        row = page.locator(f'#history tr[data-deployment="{second.id}"]')
        await expect(row).to_have_attribute("data-state", "failed")
        await expect(page.locator('#compare select[name="to"] option')).to_have_count(2)
        # The resource Flux names failed with its message; the other one nobody knows about.
        await expect(maskinporten).to_have_attribute("data-infra-state", "failed")
        await expect(maskinporten.locator(".infra-message")).to_have_text(refused)
        await expect(credentials).to_have_attribute("data-infra-state", "unknown")
        await screenshot(page, "app-live-failed")
        await page.set_viewport_size({"width": 390, "height": 844})  # a phone
        await screenshot(page, "app-live-failed-phone")
    assert navigations == []
    await page.close()

    # The same through the CLI (and the API behind it).
    cli_env = {"FJORD_SERVER": server.url, "FJORD_TOKEN": lead_token}
    shown = await asyncio.to_thread(
        fjord_cli, "status", "ttd/skjema", "--infra", "-o", "json", env=cli_env
    )
    assert shown.returncode == 0, shown.stderr
    tt02_infra = json.loads(shown.stdout)["environments"][0]
    assert tt02_infra["digest"] == v2.digest
    by_kind = {
        r["kind"]: (r["state"], r["message"]) for r in tt02_infra["clusters"][0]["resources"]
    }
    assert by_kind == {
        "MaskinportenClient": ("failed", refused),
        "AppCredentials": ("unknown", f"the app failed here: {refused}"),
    }
    wide = {**cli_env, "COLUMNS": "300"}  # one table row per line
    table = await asyncio.to_thread(fjord_cli, "status", "ttd/skjema", "--infra", env=wide)
    assert table.returncode == 0, table.stderr
    failed_row = next(r for r in table.stdout.splitlines() if "MaskinportenClient/skjema" in r)
    assert "failed: health check failed" in failed_row
