"""Input hygiene of the HTTP API: bounded ids and cursors, Flux events that are signed but
malformed, and the request-body size limit. Every bad input is a 4xx naming what is wrong."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import func, select
from test_control_support import ADMIN, CLUSTER, event_body, with_app

from fjord.api import ApiSettings, create_app
from fjord.api.client import ApiError, FjordClient
from fjord.control import ControlPlane, Role, events
from fjord.control.models import FluxEvent
from fjord.control.tokens import create_token

INT64_MAX = 2**63 - 1
BAD_IDS = [str(2**31), str(INT64_MAX), str(2**64), "9" * 5000, "-1", "0", "abc", "1e3"]


@pytest.fixture
async def admin(plane: ControlPlane, http: httpx2.AsyncClient) -> dict[str, str]:
    created = await create_token(plane, ADMIN, "root", {"*": Role.platform_admin})
    return {"Authorization": f"Bearer {created.token}"}


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_path_ids_out_of_range_or_not_numbers_are_422_naming_the_parameter(
    http: httpx2.AsyncClient, admin: dict[str, str], bad: str
) -> None:
    for method, path, name in (
        ("GET", f"/api/deployments/{bad}", "deployment_id"),
        ("POST", f"/api/deployments/{bad}/approve", "deployment_id"),
        ("DELETE", f"/api/tokens/{bad}", "token_id"),
    ):
        response = await http.request(method, path, headers=admin)
        assert response.status_code == 422, (method, path, response.text)
        assert f"path parameter {name}" in response.json()["error"], response.text


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_cursors_and_versions_out_of_range_are_422_naming_the_parameter(
    plane: ControlPlane, http: httpx2.AsyncClient, admin: dict[str, str], tmp_path: Path, bad: str
) -> None:
    await with_app(plane, tmp_path)
    for path, name in (
        (f"/api/apps/ttd/skjema/history?before={bad}", "before"),
        (f"/api/audit?before={bad}", "before"),
        (f"/api/apps/ttd/skjema/config?version={bad}", "version"),
    ):
        response = await http.get(path, headers=admin)
        assert response.status_code == 422, (path, response.text)
        assert f"query parameter {name}" in response.json()["error"], response.text


async def test_the_largest_valid_id_is_simply_not_found(
    http: httpx2.AsyncClient, admin: dict[str, str]
) -> None:
    response = await http.get(f"/api/deployments/{2**31 - 1}", headers=admin)
    assert response.status_code == 404, response.text


MALFORMED: list[tuple[bytes, str]] = [
    (b"not json", "(the body)"),
    (b"[1, 2]", "(the body)"),
    (b'{"severity": "info"}', "involvedObject"),
    (b'{"involvedObject": "Kustomization/skjema"}', "involvedObject"),
    (
        json.dumps({"involvedObject": {"kind": "Kustomization", "namespace": "x"}}).encode(),
        "involvedObject.name",
    ),
    (event_body(kind="K" * 101), "involvedObject.kind"),
    (event_body(name="n" * 254), "involvedObject.name"),
    (event_body(severity="catastrophic"), "severity"),
    (event_body(reason="R" * 101), "reason"),
    (event_body(message="nul \x00 inside"), "message"),
    (event_body(revision="tt02@sha256:" + "a" * 300), "metadata.revision"),
    (
        json.dumps(
            {
                "involvedObject": {"kind": "Kustomization", "namespace": "n", "name": "a"},
                "metadata": ["revision"],
            }
        ).encode(),
        "metadata",
    ),
    (
        json.dumps(
            {
                "involvedObject": {"kind": "Kustomization", "namespace": "n", "name": "a"},
                "metadata": {"revision": {"nested": True}},
            }
        ).encode(),
        "metadata.revision",
    ),
]


@pytest.mark.parametrize(("body", "field"), MALFORMED)
async def test_signed_but_malformed_flux_events_are_422_naming_the_field(
    plane: ControlPlane, http: httpx2.AsyncClient, tmp_path: Path, body: bytes, field: str
) -> None:
    tokens = await with_app(plane, tmp_path)
    response = await http.post(
        f"/api/flux/events/{CLUSTER}",
        content=body,
        headers={"X-Signature": events.sign(tokens[CLUSTER], body)},
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error.startswith("not a Flux event: "), error
    assert field in error, error
    metrics = (await http.get("/metrics")).text
    assert 'fjord_flux_events_total{outcome="malformed"} 1.0' in metrics
    async with plane.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(FluxEvent)) == 0


async def test_a_long_kind_and_reason_still_fit_the_timeline(
    plane: ControlPlane, http: httpx2.AsyncClient, tmp_path: Path
) -> None:
    """kind/reason (up to 201 characters) is cut to the timeline's column, not refused."""
    tokens = await with_app(plane, tmp_path)
    body = event_body(kind="K" * 100, reason="R" * 100)
    response = await http.post(
        f"/api/flux/events/{CLUSTER}",
        content=body,
        headers={"X-Signature": events.sign(tokens[CLUSTER], body)},
    )
    assert response.status_code == 202, response.text


@pytest.fixture
async def small(plane: ControlPlane) -> AsyncIterator[httpx2.AsyncClient]:
    """The API with a 1000-byte body limit."""
    app = create_app(ApiSettings(control=plane.settings, max_body_bytes=1000), plane=plane)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://fjord.test"
    ) as client:
        yield client


def _refused_as_too_large(response: httpx2.Response) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["error"] == "the request body is larger than this server accepts (1000 bytes)"
    assert "--max-body-bytes" in body["hint"]


async def test_bodies_over_the_limit_are_413_on_every_route(
    plane: ControlPlane, small: httpx2.AsyncClient, tmp_path: Path
) -> None:
    tokens = await with_app(plane, tmp_path)
    big = event_body(message="m" * 2000)
    signed = {"X-Signature": events.sign(tokens[CLUSTER], big)}
    # Declared length: refused before the route runs (even one that answers 401 unread).
    _refused_as_too_large(await small.post(f"/api/flux/events/{CLUSTER}", content=big))
    _refused_as_too_large(
        await small.post(f"/api/flux/events/{CLUSTER}", content=big, headers=signed)
    )
    _refused_as_too_large(
        await small.put(
            "/api/apps/ttd/skjema/config", json={"values": {"x": "y" * 2000}, "reason": "r"}
        )
    )
    _refused_as_too_large(await small.post("/ui/login", content=b"token=" + b"t" * 2000))

    # No declared length (chunked): counted while it streams.
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 300):
            yield big[start : start + 300]

    _refused_as_too_large(
        await small.post(f"/api/flux/events/{CLUSTER}", content=chunks(), headers=signed)
    )
    async with plane.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(FluxEvent)) == 0
    # Under the limit: accepted.
    fits = event_body()
    accepted = await small.post(
        f"/api/flux/events/{CLUSTER}",
        content=fits,
        headers={"X-Signature": events.sign(tokens[CLUSTER], fits)},
    )
    assert accepted.status_code == 202, accepted.text


async def test_the_client_turns_error_answers_into_api_errors(
    plane: ControlPlane, small: httpx2.AsyncClient, admin: dict[str, str]
) -> None:
    small.headers.update(admin)
    api = FjordClient(small, owns_http=False)
    with pytest.raises(ApiError) as missing:
        await api.get_deployment(2**31 - 1)
    assert missing.value.status == 404
    with pytest.raises(ApiError) as invalid:
        await api.get_deployment(2**31)
    assert invalid.value.status == 422
    assert "path parameter deployment_id" in invalid.value.message
    assert invalid.value.details["detail"][0]["loc"] == ["path", "deployment_id"]
    with pytest.raises(ApiError) as large:
        await api.flux_event(CLUSTER, b"x" * 2000, "sha256=0")
    assert large.value.status == 413
