"""Signing in through Gitea (OIDC) in headless Chromium and with ``fjord login``, against the
session's real Gitea and a real control plane: Gitea teams decide the buttons and the API's
answers, four eyes in production, a team change takes effect at the next refresh, expired CLI
tokens are refreshed and another issuer's tokens refused."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from control_support import (
    CHROMIUM_ARGS,
    PUBLISHED,
    cluster_token,
    make_token,
    report_ready,
)
from joserfc import jwt
from joserfc.jwk import RSAKey
from oidc_support import User, make_user, oidc_server, screenshot, sign_in, through_gitea
from playwright.async_api import Browser, Page, async_playwright

import gitea_support
from fjord.api.client import FjordClient
from fjord.control import ControlSettings, Role
from fjord.spec import default_platform
from fjord.spec.platform import IngressRouting


@pytest.fixture
def settings(tmp_path: Path) -> ControlSettings:
    platform = default_platform().model_copy(update={"routing": IngressRouting(flavour="ingress")})
    return ControlSettings(data_dir=tmp_path / "data", platform=platform)


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


async def test_teams_decide_buttons_and_four_eyes_hold_in_production_in_chromium(
    settings: ControlSettings, browser: Browser
) -> None:
    gitea = gitea_support.shared()
    dev = make_user(gitea, "dev", "ttd", "Deploy-TT02")
    prod = make_user(gitea, "prod", "ttd", "Deploy-Production")
    lead = make_user(gitea, "lead", "ttd", "Owners")
    repo = gitea.push_app("ttd", "platform-app", name="skjema")
    flux_token = await cluster_token(settings)
    setup_token = await make_token(settings, "setup", {"*": Role.platform_admin})
    with oidc_server(gitea, settings, refresh_seconds=300) as server:
        async with FjordClient.remote(server.url, setup_token) as setup:
            await setup.create_app("ttd/skjema", repo.clone_url)
            await setup.set_credential("ttd", gitea.tokens["ttd"])
            first = await setup.deploy("ttd/skjema", "tt02")
            v1 = await setup.wait_deployment(first.id, until=PUBLISHED)
            assert v1.digest is not None
            await report_ready(setup, flux_token, v1.digest)

            # Deploy-TT02: deploys to tt02, sees nothing to press for production.
            dev_page = await (await browser.new_context()).new_page()
            await sign_in(dev_page, server.url, dev)
            assert dev.name in await dev_page.inner_text("#signed-in")
            await dev_page.goto(server.url + "/ui/apps/ttd/skjema")
            await screenshot(dev_page, "app-as-tt02-deployer")
            assert await dev_page.locator('button.deploy[data-env="tt02"]').count() == 1
            assert await dev_page.locator('button[data-env="production"]').count() == 0
            assert await dev_page.locator("button.approve").count() == 0
            # The UI's route refuses the same request even with a valid CSRF token.
            csrf = await dev_page.locator('input[name="csrf"]').first.get_attribute("value")
            refused = await dev_page.request.post(
                server.url + "/ui/apps/ttd/skjema/promote", form={"csrf": csrf, "to": "production"}
            )
            assert refused.status == 403

            # Deploy-Production: promotes, but may not approve its own request (four eyes).
            prod_page = await (await browser.new_context()).new_page()
            await sign_in(prod_page, server.url, prod)
            await prod_page.goto(server.url + "/ui/apps/ttd/skjema")
            await prod_page.click('button.promote[data-env="production"]')
            history = await setup.history("ttd/skjema", environment="production")
            promo = await setup.wait_deployment(history[0].id, until=("awaiting_approval",))
            assert promo.requested_by == prod.name
            await prod_page.goto(server.url + "/ui/apps/ttd/skjema")
            row = prod_page.locator(f'#history tr[data-deployment="{promo.id}"]')
            assert await row.get_attribute("data-state") == "awaiting_approval"
            assert await row.locator("button.approve").count() == 0
            csrf = await prod_page.locator('input[name="csrf"]').first.get_attribute("value")
            own = await prod_page.request.post(
                server.url + f"/ui/deployments/{promo.id}/approve", form={"csrf": csrf or ""}
            )
            assert own.status == 403
            assert "four eyes" in await own.text()

            # An owner (app-admin) approves it in the browser.
            lead_page = await (await browser.new_context()).new_page()
            await sign_in(lead_page, server.url, lead)
            await lead_page.goto(server.url + "/ui/apps/ttd/skjema")
            await screenshot(lead_page, "app-awaiting-approval-as-owner")
            await lead_page.locator(
                f'#history tr[data-deployment="{promo.id}"] button.approve'
            ).click()
            approved = await setup.get_deployment(promo.id)
            assert approved.approved_by == lead.name
            assert approved.state != "awaiting_approval"

            # The audit log names the real people: provider, subject and name.
            entries = await setup.audit(org="ttd", action="deployment.approve")
            (entry,) = [e for e in entries if e.detail.get("deployment") == promo.id]
            gitea_id = str(gitea.server.api("GET", f"/users/{lead.name}")["id"])
            assert (entry.actor, entry.subject, entry.provider) == (lead.name, gitea_id, gitea.url)
            await screenshot(lead_page, "matrix-as-owner")


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FJORD_CONFIG": str(config), "FJORD_LOGIN_BROWSER": "none"}
    env.pop("FJORD_SERVER", None)
    env.pop("FJORD_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "fjord.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


async def _fjord_login(page: Page, server: str, config: Path, user: User) -> None:
    """``fjord login SERVER`` in a subprocess; the browser follows the URL it prints."""
    env = {**os.environ, "FJORD_CONFIG": str(config), "FJORD_LOGIN_BROWSER": "none"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fjord.cli", "login", server, stderr=asyncio.subprocess.PIPE, env=env
    )
    try:
        assert process.stderr is not None
        url = ""
        while not url:
            line = (await asyncio.wait_for(process.stderr.readline(), 120)).decode()
            assert line, "fjord login ended without printing a URL"
            url = line.strip() if line.startswith("http") else ""
        await page.goto(url)
        await through_gitea(page, user, lambda url: "/callback?code=" in url)
        assert await asyncio.wait_for(process.wait(), 120) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def _expire(config: Path) -> str:
    """Mark the current context's ID token expired; returns the old token."""
    data = json.loads(config.read_text())
    context = data["contexts"][data["current"]]
    context["expires_at"] = 0
    config.write_text(json.dumps(data))
    return str(context["id_token"])


async def test_fjord_login_deploys_refreshes_and_a_team_change_holds_after_refresh(
    settings: ControlSettings, browser: Browser, tmp_path: Path
) -> None:
    gitea = gitea_support.shared()
    dev = make_user(gitea, "cli", "ttd", "Deploy-TT02")
    repo = gitea.push_app("ttd", "platform-app", name="skjema")
    setup_token = await make_token(settings, "setup", {"*": Role.platform_admin})
    config = tmp_path / "fjord-config.json"
    # Every UI request refreshes the session: the team change shows at the next page load.
    with oidc_server(gitea, settings, refresh_seconds=0.001) as server:
        async with FjordClient.remote(server.url, setup_token) as setup:
            await setup.create_app("ttd/skjema", repo.clone_url)
            await setup.set_credential("ttd", gitea.tokens["ttd"])

        page = await (await browser.new_context()).new_page()
        await sign_in(page, server.url, dev)
        await _fjord_login(page, server.url, config, dev)
        listed = _cli(config, "context", "list", "-o", "json")
        assert json.loads(listed.stdout)[0]["server"] == server.url

        # The ID token deploys to tt02; production answers 403 (exit 4) to the same person.
        deployed = _cli(config, "deploy", "ttd/skjema", "--env", "tt02", "--no-wait", "-o", "json")
        assert deployed.returncode == 0, deployed.stderr
        assert json.loads(deployed.stdout)["requested_by"] == dev.name
        promoted = _cli(config, "promote", "ttd/skjema", "--to", "production", "--no-wait")
        assert promoted.returncode == 4, promoted.stderr
        assert "production" in promoted.stderr

        # An expired token is refreshed before the call (and saved).
        old = _expire(config)
        status = _cli(config, "status", "ttd/skjema", "-o", "json")
        assert status.returncode == 0, status.stderr
        data = json.loads(config.read_text())
        assert data["contexts"][data["current"]]["id_token"] != old
        assert data["contexts"][data["current"]]["expires_at"] > time.time()

        # Out of Deploy-TT02: the next refresh takes the right away, in the UI and the API.
        await page.goto(server.url + "/ui/apps/ttd/skjema")
        assert await page.locator('button.deploy[data-env="tt02"]').count() == 1
        gitea.server.remove_from_team("ttd", "Deploy-TT02", dev.name)
        await page.reload()
        assert await page.locator('button.deploy[data-env="tt02"]').count() == 0
        _expire(config)
        again = _cli(config, "deploy", "ttd/skjema", "--env", "tt02", "--no-wait")
        assert again.returncode == 4, again.stderr

        # A token from another issuer, or signed with another key, is refused.
        key = RSAKey.generate_key(2048, parameters={"kid": "other"})
        claims = {"sub": "1", "aud": "fjord", "exp": int(time.time()) + 300}
        for issuer in ("http://127.0.0.1:9/other", gitea.url):
            forged = jwt.encode({"alg": "RS256", "kid": "other"}, {**claims, "iss": issuer}, key)
            answer = httpx2.get(
                server.url + "/api/apps", headers={"Authorization": f"Bearer {forged}"}
            )
            assert answer.status_code == 401, answer.text
        assert (
            "not by"
            in httpx2.get(
                server.url + "/api/apps",
                headers={
                    "Authorization": "Bearer "
                    + jwt.encode(
                        {"alg": "RS256"}, {**claims, "iss": "http://127.0.0.1:9/other"}, key
                    )
                },
            ).json()["error"]
        )
