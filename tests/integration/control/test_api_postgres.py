"""The served API on a real PostgreSQL: concurrent config writes are compare-and-set (each one
succeeds or gets 409, none is lost, never a 500), and hostile ids, cursors and signed-but-
malformed Flux events are 4xx, never a database error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from control_support import fresh_database, make_token

from fjord.api import ApiSettings
from fjord.api.client import ApiError, FjordClient
from fjord.api.server import ApiServer
from fjord.control import ControlPlane, ControlSettings, Role, clusters, events, system_actor
from fjord.devcluster.postgres import LocalPostgres
from fjord.spec import default_platform
from fjord.spec.platform import IngressRouting

APP = "ttd/skjema"
CLUSTER = "ttd.tt02.tt02-1"
WRITERS = 20


@pytest.fixture
def settings(postgres: LocalPostgres, tmp_path: Path) -> Iterator[ControlSettings]:
    platform = default_platform().model_copy(update={"routing": IngressRouting(flavour="ingress")})
    with fresh_database(postgres) as url:
        yield ControlSettings(data_dir=tmp_path / "data", database_url=url, platform=platform)


@pytest.fixture
def server(settings: ControlSettings) -> Iterator[ApiServer]:
    with ApiServer(ApiSettings(control=settings)) as running:
        yield running


@pytest.fixture
async def api(
    settings: ControlSettings, server: ApiServer, tmp_path: Path
) -> AsyncIterator[FjordClient]:
    token = await make_token(settings, "admin", {"*": Role.platform_admin})
    async with FjordClient.remote(server.url, token, timeout=120) as client:
        # Config writes only: the repository is never fetched.
        await client.create_app(APP, "http://gitea.invalid/ttd/skjema.git")
        yield client


def values(writer: int) -> dict[str, Any]:
    return {"common": {"env": {"WRITER": str(writer)}}}


async def test_concurrent_writes_from_one_version_let_exactly_one_through(
    api: FjordClient,
) -> None:
    base = await api.set_config(APP, values(-1), "base", expected_version=0)

    async def write(writer: int) -> int | ApiError:
        try:
            written = await api.set_config(
                APP, values(writer), f"writer {writer}", expected_version=base.version
            )
        except ApiError as exc:
            return exc
        return written.version

    outcomes = await asyncio.gather(*(write(w) for w in range(WRITERS)))
    succeeded = [o for o in outcomes if isinstance(o, int)]
    refused = [o for o in outcomes if isinstance(o, ApiError)]
    assert succeeded == [base.version + 1]
    assert len(refused) == WRITERS - 1
    assert {(e.status, e.details["current_version"]) for e in refused} == {(409, 2)}
    history = await api.config_versions(APP)
    assert [v.version for v in history] == [1, 2]


async def test_concurrent_read_modify_write_loses_no_update(api: FjordClient) -> None:
    """Each writer reads, writes on what it read, and on 409 reads again: all 20 land, once
    each, on contiguous versions."""
    refusals: list[tuple[int, int, int]] = []  # (status, current version, expected)

    async def write(writer: int) -> int:
        while True:
            current = await api.get_config(APP)
            expected = current.version if current else 0
            try:
                written = await api.set_config(
                    APP, values(writer), f"writer {writer}", expected_version=expected
                )
            except ApiError as exc:
                refusals.append((exc.status, exc.details.get("current_version", -1), expected))
                continue
            return written.version

    landed = await asyncio.gather(*(write(w) for w in range(WRITERS)))
    assert sorted(landed) == list(range(1, WRITERS + 1))
    assert all(status == 409 and current > expected for status, current, expected in refusals)
    history = await api.config_versions(APP)
    assert [v.version for v in history] == list(range(1, WRITERS + 1))
    # Exactly the successful writes, each with its own values, at the version it was told.
    by_writer = {int(v.reason.removeprefix("writer ")): v for v in history}
    assert sorted(by_writer) == list(range(WRITERS))
    for writer, version in zip(range(WRITERS), landed, strict=True):
        assert by_writer[writer].version == version
        assert by_writer[writer].values == values(writer)


async def test_hostile_ids_cursors_and_events_are_4xx_on_postgres(
    api: FjordClient, settings: ControlSettings
) -> None:
    plane = await ControlPlane.open(settings)
    try:
        setup = system_actor("setup")
        await clusters.bootstrap(plane, setup, "ttd", "tt02", "tt02-1")
        token = await clusters.cluster_token(plane, setup, CLUSTER)
    finally:
        await plane.close()
    http = api.http
    too_big = [str(2**31), str(2**63), str(2**64), "-1", "0", "x"]
    for bad in too_big:
        for method, path in (
            ("GET", f"/api/deployments/{bad}"),
            ("POST", f"/api/deployments/{bad}/approve"),
            ("DELETE", f"/api/tokens/{bad}"),
            ("GET", f"/api/apps/{APP}/history?before={bad}"),
            ("GET", f"/api/audit?before={bad}"),
            ("GET", f"/api/apps/{APP}/config?version={bad}"),
            ("POST", f"/ui/deployments/{bad}/approve"),
        ):
            response = await http.request(method, path)
            assert response.status_code == 422, (method, path, response.text)
    assert (await http.get(f"/api/deployments/{2**31 - 1}")).status_code == 404
    long_key = {"environment": "tt02", "idempotency_key": "k" * 201}
    response = await http.post(f"/api/apps/{APP}/deployments", json=long_key)
    assert response.status_code == 422, response.text
    assert "idempotency_key" in response.json()["error"]

    # PostgreSQL refuses NUL in any text: every way in is checked before the database.
    for method, path, body in (
        ("GET", "/api/apps/ttd%00/skjema", None),
        ("GET", "/api/apps/ttd/sk%00jema/status", None),
        ("GET", "/api/apps?org=tt%00d", None),
        ("GET", f"/api/apps/{APP}/history?environment=t%00", None),
        ("GET", "/api/audit?action=a%00", None),
        ("PUT", "/api/clusters/a%00/receiver", {"url": None}),
        ("POST", "/api/flux/events/a%00", None),
        ("GET", f"/api/apps/{APP}/diff?from=a%00&to=b", None),
        ("POST", f"/api/apps/{APP}/deployments", {"environment": "tt\u0000"}),
        ("POST", f"/api/apps/{APP}/rollbacks", {"environment": "tt02", "to": "sha\u0000"}),
        (
            "PUT",
            f"/api/apps/{APP}/config",
            {"values": {"common": {"env": {"A": "\u0000"}}}, "reason": "r", "expected_version": 0},
        ),
        ("POST", "/api/tokens", {"name": "n", "grants": {"t\u0000": "developer"}}),
        ("POST", "/api/clusters/bootstrap", {"org": "t\u0000", "environment": "e", "cluster": "c"}),
    ):
        response = await http.request(method, path, json=body)
        assert response.status_code == 422, (method, path, response.text)
        assert "NUL" in response.json()["error"], response.text
    for form in (b"token=%00", b"token=\xff\xfe"):
        response = await http.post(
            "/ui/login",
            content=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 422, (form, response.text)

    involved = {"kind": "Kustomization", "namespace": "ttd-skjema", "name": "skjema"}
    for body in (
        b"\xff\xfe not utf-8",
        json.dumps({"involvedObject": {**involved, "kind": "K" * 101}}).encode(),
        json.dumps({"involvedObject": involved, "message": "nul \x00"}).encode(),
        json.dumps({"involvedObject": involved, "severity": "s" * 11}).encode(),
        json.dumps({"involvedObject": involved, "metadata": {"revision": "r" * 201}}).encode(),
    ):
        with pytest.raises(ApiError) as refused:
            await api.flux_event(CLUSTER, body, events.sign(token, body))
        assert refused.value.status == 422, (body, refused.value)
        assert refused.value.message.startswith("not a Flux event: ")
