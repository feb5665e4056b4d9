"""The web UI in headless Chromium (Debian's) against the real server: the status matrix,
history with diffs, and the approve and rollback buttons, with CSRF protection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from control_support import (
    CHROMIUM_ARGS,
    CLUSTER,
    PUBLISHED,
    cluster_token,
    make_token,
    report_ready,
)
from playwright.async_api import Browser, async_playwright

import gitea_support
from fjord.api import ApiSettings
from fjord.api.client import FjordClient
from fjord.api.server import ApiServer
from fjord.control import ControlSettings, Role
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
