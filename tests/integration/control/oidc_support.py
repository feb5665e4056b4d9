"""Signing in through the session's Gitea: users in teams, fjord's OAuth2 applications, a
control plane that trusts Gitea, and the browser steps of a Gitea sign-in."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from control_support import REPO_ROOT
from playwright.async_api import Page

from fjord.api import ApiSettings
from fjord.api.server import ApiServer
from fjord.control import ControlSettings
from fjord.control.settings import OidcSettings
from gitea_support import SessionGitea


@dataclass(frozen=True)
class User:
    name: str
    password: str


def make_user(gitea: SessionGitea, prefix: str, org: str, *teams: str) -> User:
    """A new Gitea user (unique per call) in ``org``'s ``teams``."""
    user = User(f"{prefix}-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(12))
    gitea.server.create_user(user.name, user.password, full_name=prefix.title())
    for team in teams:
        gitea.server.add_to_team(org, team, user.name)
    return user


def oidc_server(
    gitea: SessionGitea, settings: ControlSettings, *, refresh_seconds: float
) -> ApiServer:
    """An API server (not yet started) that signs in through Gitea."""
    clients = gitea.server.register_fjord()
    oidc = OidcSettings(
        issuer=clients["issuer"],
        client_id=clients["client_id"],
        cli_client_id=clients["cli_client_id"],
        session_refresh_seconds=refresh_seconds,
    )
    return ApiServer(ApiSettings(control=replace(settings, oidc=oidc)))


async def through_gitea(page: Page, user: User, back: Callable[[str], bool]) -> None:
    """On a page that went to Gitea's authorize endpoint: sign in there if asked, authorize
    fjord if asked (a first sign-in), until the browser is ``back`` (a URL test)."""

    def at(*parts: str) -> Callable[[str], bool]:
        return lambda url: back(url) or any(p in url for p in parts)

    await page.wait_for_url(at("/user/login", "/login/oauth/authorize"))
    if "/user/login" in page.url:
        await page.fill("#user_name", user.name)
        await page.fill("#password", user.password)
        await page.press("#password", "Enter")
        await page.wait_for_url(at("/login/oauth/authorize"))
    if not back(page.url):
        await page.click("#authorize-app")
        await page.wait_for_url(at())


async def sign_in(page: Page, server_url: str, user: User) -> None:
    await page.goto(server_url + "/ui/login")
    await page.click("#oidc-sign-in")
    await through_gitea(page, user, lambda url: url.startswith(server_url + "/"))
    await page.wait_for_load_state()
    if await page.locator("#signed-in").count() == 0:
        raise AssertionError(f"not signed in at {page.url}: {await page.content()}")


def artifacts_dir() -> Path:
    """Where UI tests leave screenshots (``$FJORD_TEST_ARTIFACTS``, else ``test-artifacts/``)."""
    configured = os.environ.get("FJORD_TEST_ARTIFACTS")
    directory = Path(configured) if configured else REPO_ROOT / "test-artifacts" / "ui"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


async def screenshot(page: Page, name: str) -> None:
    await page.screenshot(path=str(artifacts_dir() / f"{name}.png"), full_page=True)
