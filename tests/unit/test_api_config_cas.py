"""Dynamic config writes are compare-and-set: the expected version travels with the write
(``If-Match`` or ``expected_version``), a stale one is a 409 naming the current version."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from test_control_support import ADMIN, with_app

from fjord.api.client import ApiError, FjordClient
from fjord.control import ControlPlane, Role, apps
from fjord.control.tokens import create_token

APP = "ttd/skjema"
URL = f"/api/apps/{APP}/config"


@pytest.fixture
async def admin(plane: ControlPlane, tmp_path: Path) -> dict[str, str]:
    await with_app(plane, tmp_path)
    created = await create_token(plane, ADMIN, "root", {"*": Role.platform_admin})
    return {"Authorization": f"Bearer {created.token}"}


def values(n: int) -> dict[str, object]:
    return {"common": {"env": {"N": str(n)}}}


async def test_a_write_must_say_which_version_it_is_based_on(
    http: httpx2.AsyncClient, admin: dict[str, str]
) -> None:
    response = await http.put(URL, headers=admin, json={"values": values(1), "reason": "r"})
    assert response.status_code == 428, response.text
    assert "If-Match" in response.json()["hint"]
    assert (await http.get(URL, headers=admin)).json() is None


async def test_if_match_and_expected_version_both_work_and_etag_names_the_version(
    http: httpx2.AsyncClient, admin: dict[str, str]
) -> None:
    empty = await http.get(URL, headers=admin)
    assert empty.headers["ETag"] == '"0"'
    first = await http.put(
        URL,
        headers={**admin, "If-Match": empty.headers["ETag"]},
        json={"values": values(1), "reason": "one"},
    )
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 1
    assert first.headers["ETag"] == '"1"'
    second = await http.put(
        URL, headers=admin, json={"values": values(2), "reason": "two", "expected_version": 1}
    )
    assert second.json()["version"] == 2, second.text
    assert (await http.get(URL, headers=admin)).headers["ETag"] == '"2"'


async def test_a_stale_write_is_409_with_the_current_version_and_writes_nothing(
    http: httpx2.AsyncClient, admin: dict[str, str]
) -> None:
    for n in (0, 1):
        await http.put(
            URL, headers={**admin, "If-Match": f'"{n}"'}, json={"values": values(n), "reason": "r"}
        )
    for stale in ("0", "1", "7"):
        response = await http.put(
            URL, headers={**admin, "If-Match": f'"{stale}"'}, json={"values": {}, "reason": "late"}
        )
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["current_version"] == 2
        assert f"based on version {stale}" in body["error"]
        assert "fjord config show ttd/skjema" in body["hint"]
    versions = (await http.get(f"{URL}/versions", headers=admin)).json()
    assert [v["version"] for v in versions] == [1, 2]


@pytest.mark.parametrize("header", ["abc", '"-1"', '"1.5"', '"99999999999999999999"', '"+3"'])
async def test_an_unreadable_if_match_is_422_naming_the_header(
    http: httpx2.AsyncClient, admin: dict[str, str], header: str
) -> None:
    response = await http.put(
        URL, headers={**admin, "If-Match": header}, json={"values": {}, "reason": "r"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("header If-Match")


async def test_if_match_and_the_field_must_agree(
    http: httpx2.AsyncClient, admin: dict[str, str]
) -> None:
    response = await http.put(
        URL,
        headers={**admin, "If-Match": '"0"'},
        json={"values": {}, "reason": "r", "expected_version": 3},
    )
    assert response.status_code == 422, response.text
    assert "disagree" in response.json()["error"]


async def test_the_client_reports_the_current_version_of_a_conflict(
    http: httpx2.AsyncClient, admin: dict[str, str]
) -> None:
    http.headers.update(admin)
    api = FjordClient(http, owns_http=False)
    written = await api.set_config(APP, values(1), "one", expected_version=0)
    assert written.version == 1
    with pytest.raises(ApiError) as stale:
        await api.set_config(APP, values(2), "two", expected_version=0)
    assert (stale.value.status, stale.value.details["current_version"]) == (409, 1)
    current = await api.get_config(APP)
    assert current is not None
    assert current.values == values(1)


async def test_the_control_plane_s_own_writes_append_after_the_latest(
    plane: ControlPlane, admin: dict[str, str]
) -> None:
    """Without an expected version (server-side operations) a write goes after the latest."""
    for n in range(3):
        written = await apps.set_config(plane, ADMIN, APP, values(n), f"internal {n}")
        assert written.version == n + 1
