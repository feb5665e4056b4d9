"""Apps registered by Git repository, against the real Gitea and a real API server.

Registering an app registers its webhook in Gitea; releases are built at a tag, branch or
commit and record where they came from; bad refs and credentials are refused with nothing
built; Gitea's own deliveries of a pushed tag build a release; forged, replayed and unknown
deliveries are refused.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from control_support import fjord_cli, make_token
from git_support import Client
from sqlalchemy import select

from fjord.api import ApiSettings
from fjord.api.server import ApiServer
from fjord.control import ControlPlane, ControlSettings, Role
from fjord.control.models import App, Deployment
from fjord.sources.gitea import sign
from fjord.spec import default_platform
from fjord.spec.platform import IngressRouting
from gitea_support import EXAMPLES, SessionGitea

VERSIONED = "ghcr.io/fjord-demo/skjema:{version}"


@pytest.fixture
def settings(tmp_path: Path, gitea: SessionGitea) -> ControlSettings:
    return ControlSettings(
        data_dir=tmp_path / "data",
        platform=default_platform().model_copy(
            update={"routing": IngressRouting(flavour="ingress")}
        ),
        gitea_url=gitea.url,
        gitea_token=gitea.server.token,
    )


@pytest.fixture
def server(settings: ControlSettings) -> Iterator[ApiServer]:
    with ApiServer(ApiSettings(control=settings, sweep_seconds=0.5)) as running:
        yield running


@pytest.fixture
async def admin(settings: ControlSettings, server: ApiServer) -> AsyncIterator[Client]:
    client = Client(server.url, await make_token(settings, "admin", {"*": Role.platform_admin}))
    yield client
    await client.aclose()


def versioned_app(tmp_path: Path) -> Path:
    """The platform-app example whose image takes its version from the tag."""
    source = tmp_path / f"skjema-{uuid.uuid4().hex[:6]}"
    shutil.copytree(EXAMPLES / "platform-app", source)
    spec = source / "fjord.yaml"
    spec.write_text(spec.read_text().replace("ghcr.io/fjord-demo/skjema:1.3.0", VERSIONED))
    return source


async def _wait(check: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.3)


async def test_release_at_tag_branch_and_commit(
    gitea: SessionGitea, admin: Client, server: ApiServer, tmp_path: Path
) -> None:
    repo = gitea.push_app("ttd", versioned_app(tmp_path), name="skjema")
    env = {"FJORD_SERVER": server.url, "FJORD_TOKEN": admin.token}
    set_cred = fjord_cli(
        "app", "credential", "ttd", env={**env, "FJORD_GIT_TOKEN": gitea.tokens["ttd"]}
    )
    assert set_cred.returncode == 0, set_cred.stderr
    created = fjord_cli(
        "app", "create", "ttd/skjema", "--repo", repo.clone_url, "-o", "json", env=env
    )
    assert created.returncode == 0, created.stderr
    app = json.loads(created.stdout)
    assert (app["source"], app["webhook"], app["tag_pattern"]) == (repo.clone_url, True, "v*")
    hooks = gitea.server.api("GET", f"/repos/{repo.repository}/hooks")
    assert [h["config"]["url"] for h in hooks] == [f"{server.url}/api/hooks/gitea"]

    by_tag = fjord_cli("release", "create", "ttd/skjema", "--ref", "v1.0.0", "-o", "json", env=env)
    assert by_tag.returncode == 0, by_tag.stderr
    release = json.loads(by_tag.stdout)
    assert release["ref"] == "v1.0.0"
    assert release["commit"] == repo.commit
    assert release["image"] == "ghcr.io/fjord-demo/skjema:1.0.0"
    assert release["config_version"] == 0
    assert release["commit_url"] == f"{gitea.url}/{repo.repository}/commit/{repo.commit}"
    assert release["revision"] == f"sha1:{repo.commit}"

    # The branch and the commit are the same commit with the same tag: the same release.
    for ref in ("main", repo.commit):
        again = await admin.call("POST", "/api/apps/ttd/skjema/releases", {"ref": ref}, expect=201)
        assert (again["id"], again["digest"]) == (release["id"], release["digest"])
    # CI names the image: another release, the same commit.
    pinned = await admin.call(
        "POST",
        "/api/apps/ttd/skjema/releases",
        {"ref": "main", "image": "ghcr.io/fjord-demo/skjema@sha256:" + "e" * 64},
        expect=201,
    )
    assert pinned["digest"] != release["digest"]
    assert pinned["image"].endswith("e" * 64)

    shown = fjord_cli("release", "show", "ttd/skjema", str(release["id"]), env=env)
    assert shown.returncode == 0, shown.stderr
    assert repo.commit in shown.stdout
    assert "ghcr.io/fjord-demo/skjema:1.0.0" in shown.stdout

    # A commit without a tag cannot fill {version}: refused, with what to do.
    source = versioned_app(tmp_path)
    (source / "NOTES").write_text("untagged\n")
    untagged = gitea.push(repo, source, message="untagged")
    refused = await admin.call(
        "POST", "/api/apps/ttd/skjema/releases", {"ref": untagged}, expect=422
    )
    assert "{version}" in refused["error"]
    assert "--image" in refused["error"]

    # Where two releases came from and the commits between them: API, CLI and the web UI.
    later = await admin.call(
        "POST",
        "/api/apps/ttd/skjema/releases",
        {"ref": untagged, "image": "ghcr.io/fjord-demo/skjema:1.0.1"},
        expect=201,
    )
    path = f"/api/apps/ttd/skjema/diff?from={release['digest']}&to={later['digest']}"
    diff = await admin.call("GET", path)
    assert [(c["commit"], c["subject"]) for c in diff["commits"]] == [(untagged, "untagged")]
    assert diff["commits"][0]["url"] == f"{gitea.url}/{repo.repository}/commit/{untagged}"
    compare = f"{gitea.url}/{repo.repository}/compare/{repo.commit}...{untagged}"
    assert (diff["from_ref"], diff["to_commit"], diff["compare_url"]) == (
        "v1.0.0",
        untagged,
        compare,
    )
    cli_diff = fjord_cli(
        "history", "ttd/skjema", "--diff", release["digest"], later["digest"], env=env
    )
    assert cli_diff.returncode == 0, cli_diff.stderr
    assert f"v1.0.0 ({repo.commit[:12]}) → {untagged[:12]}" in cli_diff.stdout
    assert f"{untagged[:12]} untagged" in cli_diff.stdout
    assert f"compare: {compare}" in cli_diff.stdout
    async with httpx2.AsyncClient(base_url=server.url) as browser:
        signed_in = await browser.post("/ui/login", data={"token": admin.token})
        assert signed_in.status_code == 303, signed_in.text
        page = await browser.get(
            "/ui/apps/ttd/skjema/diff", params={"from": release["digest"], "to": later["digest"]}
        )
        assert page.status_code == 200, page.text
        assert f'href="{compare}"' in page.text
        assert f'href="{diff["commits"][0]["url"]}"' in page.text
        app_page = await browser.get("/ui/apps/ttd/skjema")
        assert f'href="{release["commit_url"]}"' in app_page.text  # the releases table
        assert "ghcr.io/fjord-demo/skjema:1.0.1" in app_page.text


async def test_bad_refs_and_credentials_build_nothing(
    gitea: SessionGitea, admin: Client, tmp_path: Path
) -> None:
    repo = gitea.push_app("digdir", "app-with-chart", name="varsel")
    await admin.call("POST", "/api/apps", {"name": "digdir/varsel", "repo": repo.clone_url}, 201)
    # No credential yet: the private repository is refused.
    refused = await admin.call(
        "POST", "/api/apps/digdir/varsel/releases", {"ref": "v1.0.0"}, expect=422
    )
    assert repo.repository in refused["error"]
    await admin.call("PUT", "/api/orgs/digdir/credential", {"token": "wrong"}, expect=204)
    refused = await admin.call(
        "POST", "/api/apps/digdir/varsel/releases", {"ref": "v1.0.0"}, expect=422
    )
    assert "refused the org's credential" in refused["error"]
    await admin.call("PUT", "/api/orgs/digdir/credential", {"token": gitea.tokens["ttd"]}, 204)
    refused = await admin.call(
        "POST", "/api/apps/digdir/varsel/releases", {"ref": "v1.0.0"}, expect=422
    )
    assert "cannot read it" in refused["error"]
    await admin.call("PUT", "/api/orgs/digdir/credential", {"token": gitea.tokens["digdir"]}, 204)
    unknown = await admin.call(
        "POST", "/api/apps/digdir/varsel/releases", {"ref": "v7.7.7"}, expect=422
    )
    assert repo.repository in unknown["error"]
    assert "'v7.7.7'" in unknown["error"]
    # A deploy pins its ref at request time: an unknown one is refused before anything starts.
    deploy = await admin.call(
        "POST",
        "/api/apps/digdir/varsel/deployments",
        {"environment": "tt02", "ref": "v7.7.7"},
        expect=422,
    )
    assert "'v7.7.7'" in deploy["error"]
    assert await admin.call("GET", "/api/apps/digdir/varsel/history") == []
    assert await admin.call("GET", "/api/apps/digdir/varsel/releases") == []
    ok = await admin.call("POST", "/api/apps/digdir/varsel/releases", {"ref": "v1.0.0"}, 201)
    assert ok["commit"] == repo.commit
    # A repository URL that is a path on the control plane's host is refused outright.
    local = await admin.call(
        "POST", "/api/apps", {"name": "digdir/other", "repo": str(tmp_path)}, expect=422
    )
    assert "not an http(s) clone URL" in local["error"]


async def _hook_secret(settings: ControlSettings, app: str) -> str:
    plane = await ControlPlane.open(settings, migrate_db=False)
    try:
        async with plane.db.session() as session:
            row = (await session.scalars(select(App).where(App.name == app))).one()
            assert row.webhook_secret_cipher is not None
            return plane.cipher.decrypt(row.webhook_secret_cipher)
    finally:
        await plane.close()


async def test_webhooks_build_tags_and_refuse_forgeries(
    gitea: SessionGitea,
    admin: Client,
    server: ApiServer,
    settings: ControlSettings,
    tmp_path: Path,
) -> None:
    repo = gitea.push_app("ttd", versioned_app(tmp_path), name="skjema")
    await admin.call("PUT", "/api/orgs/ttd/credential", {"token": gitea.tokens["ttd"]}, 204)
    await admin.call("POST", "/api/apps", {"name": "ttd/skjema", "repo": repo.clone_url}, 201)

    # Gitea itself delivers the push of a new tag: a release is built from it.
    source = versioned_app(tmp_path)
    (source / "CHANGELOG").write_text("1.1.0\n")
    commit = gitea.push(repo, source, message="1.1.0", tag="v1.1.0")

    async def built() -> Any:
        rows = await admin.call("GET", "/api/apps/ttd/skjema/releases")
        return next((r for r in rows if r["ref"] == "v1.1.0"), None)

    release = await _wait(built, "a release of v1.1.0 built by the webhook")
    assert release["commit"] == commit
    assert release["image"] == "ghcr.io/fjord-demo/skjema:1.1.0"
    audit = await admin.call("GET", "/api/audit", expect=200)
    assert any(e["action"] == "release.create" and e["actor"] == "gitea-webhook" for e in audit)

    # v1.2.0 is tagged while the hook is off, so only the deliveries below can build it.
    hook_id = gitea.server.api("GET", f"/repos/{repo.repository}/hooks")[0]["id"]
    hook = f"/repos/{repo.repository}/hooks/{hook_id}"
    gitea.server.api("PATCH", hook, {"active": False})
    gitea.server.api(
        "POST", f"/repos/{repo.repository}/tags", {"tag_name": "v1.2.0", "target": commit}
    )
    gitea.server.api("PATCH", hook, {"active": True})
    secret = await _hook_secret(settings, "skjema")
    payload = {
        "ref": "refs/tags/v1.2.0",
        "after": commit,
        "repository": {"full_name": repo.repository, "clone_url": repo.clone_url},
    }
    body = json.dumps(payload).encode()
    async with httpx2.AsyncClient(base_url=server.url) as http:

        async def deliver(data: bytes, signature: str, delivery: str) -> httpx2.Response:
            return await http.post(
                "/api/hooks/gitea",
                content=data,
                headers={
                    "X-Gitea-Event": "push",
                    "X-Gitea-Delivery": delivery,
                    "X-Gitea-Signature": signature,
                    "Content-Type": "application/json",
                },
            )

        forged = await deliver(body, sign("not-the-secret", body), "d-forged")
        assert forged.status_code == 401, forged.text
        assert (await deliver(body, "", "d-unsigned")).status_code == 401
        first = await deliver(body, sign(secret, body), "d-1")
        assert first.status_code == 202, first.text
        assert first.json()["action"] == "release"
        replayed = await deliver(body, sign(secret, body), "d-1")
        assert replayed.status_code == 401
        assert "already received" in replayed.json()["error"]
        other = json.dumps(
            {**payload, "repository": {"clone_url": f"{gitea.url}/ttd/unknown.git"}}
        ).encode()
        unknown = await deliver(other, sign(secret, other), "d-2")
        assert unknown.status_code == 404, unknown.text

    # Only the signed delivery built v1.2.0: one build of it in the audit log, none forged.
    async def v120() -> Any:
        rows = await admin.call("GET", "/api/apps/ttd/skjema/releases")
        return next((r for r in rows if r["ref"] == "v1.2.0"), None)

    await _wait(v120, "the signed delivery's release")
    audit = await admin.call("GET", "/api/audit", expect=200)
    builds = [e for e in audit if e["action"] == "release.create"]
    refs = [e["detail"]["ref"] for e in builds]
    # (Gitea may also deliver the push of v1.0.0 late: it queues push events, and under load
    # the repository's first push is processed after the hook exists.)
    assert refs.count("v1.2.0") == 1, builds
    assert "v1.1.0" in refs


async def _queued_builds(settings: ControlSettings) -> list[Deployment]:
    plane = await ControlPlane.open(settings, migrate_db=False)
    try:
        async with plane.db.session() as session:
            rows = await session.scalars(select(Deployment).where(Deployment.kind == "build"))
            return list(rows.all())
    finally:
        await plane.close()


async def test_a_pushed_tag_survives_the_replica_that_answered(
    gitea: SessionGitea, settings: ControlSettings, tmp_path: Path
) -> None:
    """The replica that answers Gitea's delivery stops at once, before any worker ran: the tag's
    build is a queued job in the database, and the next replica's worker builds it."""
    repo = gitea.push_app("ttd", versioned_app(tmp_path), name="skjema")
    answering = ApiServer(ApiSettings(control=settings, run_worker=False, sweep_seconds=0.5))
    with answering:
        admin = Client(
            answering.url, await make_token(settings, "admin", {"*": Role.platform_admin})
        )
        try:
            await admin.call("PUT", "/api/orgs/ttd/credential", {"token": gitea.tokens["ttd"]}, 204)
            await admin.call(
                "POST", "/api/apps", {"name": "ttd/skjema", "repo": repo.clone_url}, 201
            )
            source = versioned_app(tmp_path)
            (source / "CHANGELOG").write_text("2.0.0\n")
            commit = gitea.push(repo, source, message="2.0.0", tag="v2.0.0")

            async def queued() -> Any:
                jobs = await _queued_builds(settings)
                return next((j for j in jobs if j.source_ref == "v2.0.0"), None)

            pending = await _wait(queued, "the delivery of v2.0.0 answered and queued")
            assert (pending.state, pending.source_revision) == ("queued", commit)
            assert await admin.call("GET", "/api/apps/ttd/skjema/releases") == []
        finally:
            await admin.aclose()

    with ApiServer(ApiSettings(control=settings, sweep_seconds=0.5)) as next_replica:
        admin = Client(
            next_replica.url, await make_token(settings, "admin2", {"*": Role.platform_admin})
        )
        try:

            async def finished() -> Any:
                job = await admin.call("GET", f"/api/deployments/{pending.id}")
                return job if job["state"] in ("ready", "failed") else None

            job = await _wait(finished, "the next replica's worker builds v2.0.0", timeout=180)
            assert (job["kind"], job["state"], job["ref"], job["commit"]) == (
                "build",
                "ready",
                "v2.0.0",
                commit,
            )
            release = await admin.call("GET", f"/api/apps/ttd/skjema/releases/{job['release_id']}")
            assert (release["ref"], release["commit"], release["image"]) == (
                "v2.0.0",
                commit,
                "ghcr.io/fjord-demo/skjema:2.0.0",
            )
            assert [s["name"] for s in job["steps"]] == ["building", "pushing"]
        finally:
            await admin.aclose()
