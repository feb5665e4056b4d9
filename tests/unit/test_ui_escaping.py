"""The web UI escapes user text: markup in a name or a message arrives as text, never as HTML."""

from __future__ import annotations

import urllib.parse

import httpx2
from test_control_support import ADMIN

from fjord.control import ControlPlane
from fjord.control.roles import ALL_ORGS, Role
from fjord.control.tokens import create_token

SCRIPT = "<img src=x onerror=alert(1)><b x='y'>"  # no "/": it would split the path


async def test_markup_in_a_url_and_an_error_is_escaped(
    plane: ControlPlane, http: httpx2.AsyncClient
) -> None:
    created = await create_token(plane, ADMIN, "ui", {ALL_ORGS: Role.platform_admin})
    login = await http.post("/ui/login", content=f"token={created.token}".encode())
    assert login.status_code == 303
    http.cookies = login.cookies
    page = await http.get(f"/ui/apps/ttd/{urllib.parse.quote(SCRIPT, safe='')}")
    assert "unknown app" in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;&lt;b x=&#39;y&#39;&gt;" in page.text
    assert "<img src=x" not in page.text
