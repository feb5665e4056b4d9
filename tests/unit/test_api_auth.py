"""The HTTP API: token authentication, per-org roles and isolation, audit, and the Flux event
endpoint's HMAC checks; the real FastAPI app over an in-memory ASGI transport."""

from __future__ import annotations

from pathlib import Path

import httpx2
from sqlalchemy import func, select
from test_control_support import ADMIN, CLUSTER, UNUSED_REPO, app_repo, event_body, with_app

import gitea_support
from fjord.control import ControlPlane, Role, events
from fjord.control.models import AuditEntry, FluxEvent
from fjord.control.tokens import create_token


async def token(plane: ControlPlane, name: str, grants: dict[str, Role]) -> dict[str, str]:
    created = await create_token(plane, ADMIN, name, grants)
    return {"Authorization": f"Bearer {created.token}"}


async def test_requests_without_a_valid_token_are_refused(
    plane: ControlPlane, http: httpx2.AsyncClient
) -> None:
    assert (await http.get("/api/apps")).status_code == 401
    bad = await http.get("/api/apps", headers={"Authorization": "Bearer fjt_nope"})
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid or revoked API token"
    admin = await token(plane, "root", {"*": Role.platform_admin})
    made = (
        await http.post(
            "/api/tokens", headers=admin, json={"name": "x", "grants": {"ttd": "developer"}}
        )
    ).json()
    headers = {"Authorization": f"Bearer {made['token']}"}
    assert (await http.get("/api/apps", headers=headers)).status_code == 200
    assert (
        await http.delete(f"/api/tokens/{made['info']['id']}", headers=admin)
    ).status_code == 204
    assert (await http.get("/api/apps", headers=headers)).status_code == 401
    listed = (await http.get("/api/tokens", headers=admin)).json()
    assert "token" not in listed[0]
    assert "token_hash" not in listed[0]


async def test_openapi_schema_describes_the_api(http: httpx2.AsyncClient) -> None:
    schema = (await http.get("/openapi.json")).json()
    for path in (
        "/api/apps/{org}/{app}/deployments",
        "/api/apps/{org}/{app}/promotions",
        "/api/apps/{org}/{app}/rollbacks",
        "/api/apps/{org}/{app}/undeployments",
        "/api/apps/{org}/{app}/history",
        "/api/deployments/{deployment_id}/approve",
        "/api/flux/events/{cluster_id}",
    ):
        assert path in schema["paths"], path


async def test_org_a_can_never_read_or_change_org_b(
    plane: ControlPlane, http: httpx2.AsyncClient, tmp_path: Path
) -> None:
    await with_app(plane, tmp_path)
    ttd = await token(plane, "ttd-dev", {"ttd": Role.developer})
    digdir = await token(plane, "digdir-admin", {"digdir": Role.platform_admin})
    deployed = await http.post(
        "/api/apps/ttd/skjema/deployments", headers=ttd, json={"environment": "tt02"}
    )
    assert deployed.status_code == 202, deployed.text
    deployment_id = deployed.json()["id"]

    reads = [
        "/api/apps/ttd/skjema",
        "/api/apps/ttd/skjema/status",
        "/api/apps/ttd/skjema/infra",
        "/api/apps/ttd/skjema/history",
        "/api/apps/ttd/skjema/releases",
        "/api/apps/ttd/skjema/config",
        "/api/apps?org=ttd",
        "/api/clusters?org=ttd",
    ]
    for path in reads:
        assert (await http.get(path, headers=digdir)).status_code == 403, path
    infra = await http.get("/api/apps/ttd/skjema/infra", headers=ttd)
    assert infra.status_code == 200, infra.text
    assert [e["environment"] for e in infra.json()["environments"]] == ["tt02", "production"]
    assert (await http.get(f"/api/deployments/{deployment_id}", headers=digdir)).status_code == 404
    writes = [
        ("POST", "/api/apps/ttd/skjema/deployments", {"environment": "tt02"}),
        ("POST", "/api/apps/ttd/skjema/rollbacks", {"environment": "tt02"}),
        ("POST", "/api/apps/ttd/skjema/undeployments", {"environment": "tt02"}),
        ("POST", "/api/apps/ttd/skjema/promotions", {"to": "production"}),
        ("PUT", "/api/apps/ttd/skjema/config", {"values": {}, "reason": "x"}),
        ("POST", "/api/apps", {"name": "ttd/evil", "repo": UNUSED_REPO}),
        (
            "POST",
            "/api/clusters/bootstrap",
            {"org": "ttd", "environment": "tt02", "cluster": "tt02-1"},
        ),
        ("POST", "/api/tokens", {"name": "x", "grants": {"ttd": "developer"}}),
    ]
    for method, path, body in writes:
        response = await http.request(method, path, headers=digdir, json=body)
        assert response.status_code == 403, (path, response.text)
    # Other orgs' clusters and deployments do not even exist for this caller.
    approve = await http.post(f"/api/deployments/{deployment_id}/approve", headers=digdir)
    assert approve.status_code == 404
    receiver = await http.put(
        f"/api/clusters/{CLUSTER}/receiver", headers=digdir, json={"url": "http://evil"}
    )
    assert receiver.status_code == 404
    assert (await http.get("/api/apps", headers=digdir)).json() == []
    assert (await http.get("/api/status", headers=digdir)).json() == []
    # A developer of ttd cannot reach for admin powers either.
    assert (
        await http.post(
            "/api/tokens", headers=ttd, json={"name": "y", "grants": {"ttd": "app-admin"}}
        )
    ).status_code == 403
    assert (
        await http.post("/api/apps/ttd/skjema/rollbacks", headers=ttd, json={"environment": "tt02"})
    ).status_code == 403


async def test_every_mutation_is_audited_with_its_actor(
    plane: ControlPlane, http: httpx2.AsyncClient, tmp_path: Path
) -> None:
    admin = await token(plane, "ops", {"ttd": Role.platform_admin})
    await http.post("/api/apps", headers=admin, json={"name": "ttd/skjema", "repo": app_repo()})
    await http.put(
        "/api/orgs/ttd/credential",
        headers=admin,
        json={"token": gitea_support.shared().tokens["ttd"]},
    )
    await http.put(
        "/api/apps/ttd/skjema/config",
        headers={**admin, "If-Match": '"0"'},
        json={"values": {}, "reason": "first"},
    )
    await http.put(
        f"/api/clusters/{CLUSTER}/receiver", headers=admin, json={"url": "http://127.0.0.1:9"}
    )
    await http.post(
        "/api/apps/ttd/skjema/deployments",
        headers={**admin, "Idempotency-Key": "once"},
        json={"environment": "tt02"},
    )
    again = await http.post(
        "/api/apps/ttd/skjema/deployments",
        headers={**admin, "Idempotency-Key": "once"},
        json={"environment": "tt02"},
    )
    assert again.status_code == 202
    async with plane.db.session() as session:
        rows = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    actions = [(r.actor, r.action) for r in rows if r.actor == "token:ops"]
    assert actions == [
        ("token:ops", "app.create"),
        ("token:ops", "org.credential.set"),
        ("token:ops", "config.set"),
        ("token:ops", "cluster.receiver"),
        ("token:ops", "deployment.deploy"),  # once: the retry with the same key changed nothing
    ]


async def test_flux_events_need_the_cluster_s_signature(
    plane: ControlPlane, http: httpx2.AsyncClient, tmp_path: Path
) -> None:
    tokens = await with_app(plane, tmp_path)
    body = event_body(revision="tt02@sha256:" + "c" * 64)
    url = f"/api/flux/events/{CLUSTER}"
    headers = {"Content-Type": "application/json"}

    missing = await http.post(url, content=body, headers=headers)
    assert missing.status_code == 401
    wrong = await http.post(url, content=body, headers={**headers, "X-Signature": "sha256=00"})
    assert wrong.status_code == 401
    unknown = await http.post(
        "/api/flux/events/ttd.tt02.ghost",
        content=body,
        headers={**headers, "X-Signature": events.sign(tokens[CLUSTER], body)},
    )
    assert unknown.status_code == 401
    async with plane.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(FluxEvent)) == 0

    signed = {**headers, "X-Signature": events.sign(tokens[CLUSTER], body)}
    first = await http.post(url, content=body, headers=signed)
    assert (first.status_code, first.json()) == (202, {"recorded": True, "app": "ttd/skjema"})
    replay = await http.post(url, content=body, headers=signed)
    assert (replay.status_code, replay.json()) == (202, {"recorded": False, "app": None})
    garbage = b"not json"
    refused = await http.post(
        url,
        content=garbage,
        headers={**headers, "X-Signature": events.sign(tokens[CLUSTER], garbage)},
    )
    assert refused.status_code == 422
    async with plane.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(FluxEvent)) == 1
