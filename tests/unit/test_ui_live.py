"""The app page's live fragment and its script: the same parts as the page, by id; 401, 403
and 404 as plain answers (the script stops on them), never a redirect or a 500."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
from test_control_support import ADMIN, with_app

from fjord.control import ControlPlane, Role, queries
from fjord.control.tokens import create_token


async def _signed_in(
    plane: ControlPlane, http: httpx2.AsyncClient, grants: dict[str, Role]
) -> None:
    created = await create_token(plane, ADMIN, "ui", grants)
    login = await http.post("/ui/login", content=f"token={created.token}".encode())
    assert login.status_code == 303
    http.cookies = login.cookies


def _live_ids(html: str) -> set[str]:
    return set(re.findall(r'id="(live-[^"]+)" data-live', html))


async def test_the_fragment_carries_every_live_part_of_the_page(
    plane: ControlPlane, http: httpx2.AsyncClient, tmp_path: Path
) -> None:
    await with_app(plane, tmp_path)
    assert (await http.get("/ui/apps/ttd/skjema/live")).status_code == 401
    await _signed_in(plane, http, {"ttd": Role.developer})
    page = await http.get("/ui/apps/ttd/skjema")
    fragment = await http.get("/ui/apps/ttd/skjema/live")
    assert fragment.status_code == 200
    assert 'data-live-url="/ui/apps/ttd/skjema/live"' in page.text
    assert '<script src="/ui/static/live.js" defer></script>' in page.text
    ids = _live_ids(page.text)
    assert {"live-progress", "live-infra", "live-history", "live-deployment-tt02"} <= ids
    assert _live_ids(fragment.text) == ids
    assert "<script" not in fragment.text
    missing = await http.get("/ui/apps/ttd/nothing/live")
    assert (missing.status_code, missing.headers["content-type"][:10]) == (404, "text/plain")


async def test_another_orgs_app_is_refused_and_the_script_is_served(
    plane: ControlPlane, http: httpx2.AsyncClient, tmp_path: Path
) -> None:
    await with_app(plane, tmp_path)
    await _signed_in(plane, http, {"digdir": Role.app_admin})
    assert (await http.get("/ui/apps/ttd/skjema/live")).status_code == 403
    script = await http.get("/ui/static/live.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "data-live-url" in script.text
    assert (await http.get("/ui/static/other.js")).status_code == 404


async def test_the_overview_pages_and_filters_what_the_caller_may_read(
    plane: ControlPlane, http: httpx2.AsyncClient, tmp_path: Path
) -> None:
    await with_app(plane, tmp_path)
    await _signed_in(plane, http, {"ttd": Role.developer})
    everything = await http.get("/")
    assert 'data-app="ttd/skjema"' in everything.text
    assert "apps 1–1 of 1" in everything.text
    assert 'rel="next"' not in everything.text
    found = await http.get("/", params={"q": " TTD/SKJ "})
    assert 'data-app="ttd/skjema"' in found.text
    missing = await http.get("/", params={"q": "<b>%_"})
    assert "No app matches “&lt;b&gt;%_”." in missing.text
    past = await http.get("/", params={"page": "2"})
    assert 'data-app="ttd/skjema"' not in past.text
    assert (await http.get("/", params={"page": "0"})).status_code == 422
    rows, total = await queries.matrix_page(plane, ADMIN, search="skj", offset=1, limit=1)
    assert (rows, total) == ([], 1)
    await _signed_in(plane, http, {"digdir": Role.app_admin})
    assert "No apps yet." in (await http.get("/")).text
