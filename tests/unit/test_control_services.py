"""Service layer on SQLite and a local store: apps, config, deploy, promote, approve, rollback,
undeploy, idempotency, serialisation, store outages, roles and tenancy."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select
from test_control_support import (
    ADMIN,
    CLUSTER,
    PROD_CLUSTER,
    UNUSED_REPO,
    event_body,
    opened,
    report,
    settings,
    settle,
    with_app,
)

from fjord.control import (
    Actor,
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    Role,
    apps,
    audit,
    deploys,
    queries,
    tokens,
)
from fjord.control.models import AuditEntry, Release
from fjord.control.worker import drain
from fjord.stores import LocalStore

DEV = Actor("dev", {"ttd": Role.developer})
LEAD = Actor("lead", {"ttd": Role.app_admin})
OTHER = Actor("mallory", {"digdir": Role.platform_admin})


async def test_create_app_checks_the_repository_and_the_name(tmp_path: Path) -> None:
    async with opened(settings(tmp_path)) as plane:
        # The server never reads a path of its own host: only http(s) clone URLs.
        for local in (str(tmp_path), f"file://{tmp_path}", "ssh://git@host/ttd/skjema.git"):
            with pytest.raises(InvalidError, match="not an http"):
                await apps.create_app(plane, ADMIN, "ttd/skjema", local)
        with pytest.raises(InvalidError, match="carries credentials"):
            await apps.create_app(plane, ADMIN, "ttd/skjema", "https://u:p@gitea.invalid/a.git")
        with pytest.raises(InvalidError, match="needs both a branch and an environment"):
            await apps.create_app(plane, ADMIN, "ttd/skjema", UNUSED_REPO, deploy_branch="main")
        with pytest.raises(NotFoundError, match="unknown org 'nope'"):
            await apps.create_app(plane, ADMIN, "nope/skjema", UNUSED_REPO)
        created = await apps.create_app(plane, DEV, "ttd/skjema", UNUSED_REPO)
        assert (created.source, created.webhook) == (UNUSED_REPO, False)
        with pytest.raises(ConflictError):
            await apps.create_app(plane, DEV, "ttd/skjema", UNUSED_REPO)
        with pytest.raises(ForbiddenError):
            await apps.create_app(plane, OTHER, "ttd/skjema2", UNUSED_REPO)


async def test_config_is_versioned_and_every_change_audited(tmp_path: Path) -> None:
    async with opened(settings(tmp_path)) as plane:
        await with_app(plane, tmp_path)
        assert await apps.get_config(plane, DEV, "ttd/skjema") is None
        one = await apps.set_config(
            plane, DEV, "ttd/skjema", {"common": {"env": {"A": "1"}}}, "turn on A"
        )
        two = await apps.set_config(
            plane, LEAD, "ttd/skjema", {"common": {"env": {"A": "2"}}}, "A goes to 2"
        )
        assert (one.version, two.version) == (1, 2)
        assert (await apps.get_config(plane, DEV, "ttd/skjema", 1)).values == one.values  # type: ignore[union-attr]
        history = await apps.config_versions(plane, DEV, "ttd/skjema")
        assert [(v.author, v.reason) for v in history] == [
            ("dev", "turn on A"),
            ("lead", "A goes to 2"),
        ]
        with pytest.raises(InvalidError, match="unknown key"):
            await apps.set_config(plane, DEV, "ttd/skjema", {"bogus": {}}, "why not")
        with pytest.raises(InvalidError, match="say why"):
            await apps.set_config(plane, DEV, "ttd/skjema", {}, " ")
        async with plane.db.session() as session:
            audited = (
                await session.scalars(
                    select(AuditEntry)
                    .where(AuditEntry.action == "config.set")
                    .order_by(AuditEntry.id)
                )
            ).all()
        assert [(a.actor, a.detail["reason"]) for a in audited] == [
            ("dev", "turn on A"),
            ("lead", "A goes to 2"),
        ]


async def test_deploy_publishes_signed_release_sync_root_and_tag(tmp_path: Path) -> None:
    config = settings(tmp_path)
    async with opened(config) as plane:
        tokens = await with_app(plane, tmp_path)
        deployment = await settle(
            plane, deploys.deploy(plane, DEV, "ttd/skjema", "tt02", idempotency_key="a")
        )
        assert deployment.state == "progressing", deployment.reason
        assert deployment.revision is not None
        # Built from the head of the repository's default branch, pinned when requested.
        assert deployment.commit is not None
        assert deployment.revision == f"sha1:{deployment.commit}"
        assert deployment.ref == "main"
        assert [c.state for c in deployment.clusters] == ["pending"]
        store = LocalStore(config.local_store_dir)
        assert await store.resolve("ttd/apps/skjema", "tt02") == deployment.digest
        sync = await store.pull("ttd/sync/tt02", "current")
        assert "apps/skjema.yaml" in sync.files()

        # Flux reports the digest applied: the deployment is ready, the matrix shows it.
        await report(plane, tokens[CLUSTER], event_body(revision=f"tt02@{deployment.digest}"))
        ready = await queries.get_deployment(plane, DEV, deployment.id)
        assert ready.state == "ready"
        assert ready.clusters[0].revision == f"tt02@{deployment.digest}"
        status = await queries.app_status(plane, DEV, "ttd/skjema")
        assert status.environments[0].clusters[0].digest == deployment.digest
        # The matrix (bulk queries) says the same as the app's own status, in summary.
        (row,) = [r for r in await queries.matrix(plane, DEV) if r.app == "skjema"]
        assert [e.clusters for e in row.environments] == [e.clusters for e in status.environments]
        summary = row.environments[0].deployment
        assert summary is not None
        assert (summary.id, summary.state, summary.digest) == (
            deployment.id,
            "ready",
            deployment.digest,
        )
        assert row.environments[1].deployment is None

        # Same inputs, same digest: a second deploy reuses the immutable release and is
        # ready at once, because the cluster already runs that digest.
        again = await settle(
            plane, deploys.deploy(plane, DEV, "ttd/skjema", "tt02", idempotency_key="b")
        )
        assert again.digest == deployment.digest
        assert again.state == "ready"
        async with plane.db.session() as session:
            assert await session.scalar(select(func.count()).select_from(Release)) == 1


async def test_idempotency_key_returns_the_same_deployment(tmp_path: Path) -> None:
    async with opened(settings(tmp_path)) as plane:
        await with_app(plane, tmp_path)
        first, second = await asyncio.gather(
            deploys.deploy(plane, DEV, "ttd/skjema", "tt02", idempotency_key="same"),
            deploys.deploy(plane, DEV, "ttd/skjema", "tt02", idempotency_key="same"),
        )
        assert first.id == second.id
        history = await queries.history(plane, DEV, "ttd/skjema")
        assert len(history) == 1
        with pytest.raises(ConflictError, match="idempotency key"):
            await settle(
                plane, deploys.undeploy(plane, LEAD, "ttd/skjema", "tt02", idempotency_key="same")
            )


async def test_concurrent_deploys_of_one_app_and_environment_are_queued_never_refused(
    tmp_path: Path,
) -> None:
    async with opened(settings(tmp_path)) as plane:
        await with_app(plane, tmp_path)
        requested = await asyncio.gather(
            *(
                deploys.deploy(plane, DEV, "ttd/skjema", "tt02", idempotency_key=f"k{i}")
                for i in range(3)
            )
        )
        assert {r.state for r in requested} <= {"queued", "superseded"}
        await drain(plane)
        final = sorted(
            [await queries.get_deployment(plane, DEV, r.id) for r in requested],
            key=lambda d: d.id,
        )
        # The newest request supersedes the queued older ones; nothing is refused or failed.
        assert [f.state for f in final] == ["superseded", "superseded", "progressing"]
        for older in final[:-1]:
            assert older.reason is not None
            assert older.reason.endswith("before it started")
            assert older.steps == []
        assert [s.name for s in final[-1].steps] == [
            "building", "pushing", "approval", "window", "placing", "sync-root", "tagging",
            "receivers",
        ]  # fmt: skip


async def test_promote_needs_a_ready_release_and_production_needs_an_app_admin(
    tmp_path: Path,
) -> None:
    config = settings(tmp_path)
    async with opened(config) as plane:
        tokens = await with_app(plane, tmp_path)
        with pytest.raises(InvalidError, match="nothing is ready in tt02"):
            await settle(plane, deploys.promote(plane, DEV, "ttd/skjema", to="production"))
        with pytest.raises(InvalidError, match="first environment"):
            await settle(plane, deploys.promote(plane, DEV, "ttd/skjema", to="tt02"))
        deployment = await settle(plane, deploys.deploy(plane, DEV, "ttd/skjema", "tt02"))
        await report(plane, tokens[CLUSTER], event_body(revision=f"tt02@{deployment.digest}"))

        promotion = await settle(plane, deploys.promote(plane, DEV, "ttd/skjema", to="production"))
        assert promotion.state == "awaiting_approval"
        assert promotion.digest == deployment.digest
        store = LocalStore(config.local_store_dir)
        assert await store.resolve("ttd/apps/skjema", "production") is None
        with pytest.raises(ForbiddenError, match="app-admin"):
            await settle(plane, deploys.approve(plane, DEV, promotion.id))
        with pytest.raises(NotFoundError):
            await settle(plane, deploys.approve(plane, OTHER, promotion.id))
        approved = await settle(plane, deploys.approve(plane, LEAD, promotion.id))
        assert approved.state == "progressing"
        assert approved.approved_by == "lead"
        assert await store.resolve("ttd/apps/skjema", "production") == deployment.digest
        with pytest.raises(ConflictError, match="not awaiting approval"):
            await settle(plane, deploys.approve(plane, LEAD, promotion.id))
        await report(
            plane,
            tokens[PROD_CLUSTER],
            event_body(revision=f"production@{deployment.digest}"),
            cluster=PROD_CLUSTER,
        )
        assert (await queries.get_deployment(plane, DEV, promotion.id)).state == "ready"


async def test_rollback_points_the_environment_at_the_previous_ready_release(
    tmp_path: Path,
) -> None:
    config = settings(tmp_path)
    async with opened(config) as plane:
        tokens = await with_app(plane, tmp_path)
        first = await settle(plane, deploys.deploy(plane, DEV, "ttd/skjema", "tt02"))
        await report(plane, tokens[CLUSTER], event_body(revision=f"tt02@{first.digest}"))
        await apps.set_config(
            plane, DEV, "ttd/skjema", {"environments": {"tt02": {"env": {"B": "x"}}}}, "B"
        )
        second = await settle(plane, deploys.deploy(plane, DEV, "ttd/skjema", "tt02"))
        assert second.digest != first.digest
        await report(plane, tokens[CLUSTER], event_body(revision=f"tt02@{second.digest}"))

        with pytest.raises(ForbiddenError):
            await settle(plane, deploys.rollback(plane, DEV, "ttd/skjema", "tt02"))
        back = await settle(plane, deploys.rollback(plane, LEAD, "ttd/skjema", "tt02"))
        assert (back.kind, back.digest) == ("rollback", first.digest)
        # The cluster still reports the second digest: pending until Flux applies the first.
        assert back.state == "progressing"
        store = LocalStore(config.local_store_dir)
        assert await store.resolve("ttd/apps/skjema", "tt02") == first.digest
        to_second = await settle(
            plane,
            deploys.rollback(plane, LEAD, "ttd/skjema", "tt02", to=second.digest[7:19]),
        )
        assert to_second.digest == second.digest
        assert to_second.state == "ready"  # already running there
        with pytest.raises(NotFoundError, match="no release matches"):
            await settle(
                plane, deploys.rollback(plane, LEAD, "ttd/skjema", "tt02", to="sha256:0000")
            )
        diff = await queries.diff(plane, DEV, "ttd/skjema", first.digest, second.digest)
        assert [f.path for f in diff.files] == ["tt02/skjema.yaml"]
        added = [line[1:].strip() for line in diff.files[0].diff.splitlines() if line[:1] == "+"]
        assert "- name: B" in added
        assert '+        "B": "x"' in diff.config.splitlines()


async def test_undeploy_removes_the_app_from_the_sync_root(tmp_path: Path) -> None:
    config = settings(tmp_path)
    async with opened(config) as plane:
        tokens = await with_app(plane, tmp_path)
        first = await settle(plane, deploys.deploy(plane, DEV, "ttd/skjema", "tt02"))
        await report(plane, tokens[CLUSTER], event_body(revision=f"tt02@{first.digest}"))
        gone = await settle(plane, deploys.undeploy(plane, LEAD, "ttd/skjema", "tt02"))
        assert gone.state == "progressing"
        store = LocalStore(config.local_store_dir)
        sync_digest = await store.resolve("ttd/sync/tt02", "current")
        assert sync_digest is not None
        assert "apps/skjema.yaml" not in (await store.pull("ttd/sync/tt02", sync_digest)).files()
        # The root Kustomization applied the new sync root: the app is gone there.
        await report(
            plane,
            tokens[CLUSTER],
            event_body(
                namespace="flux-system", name="fjord-sync", revision=f"current@{sync_digest}"
            ),
        )
        assert (await queries.get_deployment(plane, DEV, gone.id)).state == "ready"
        status = await queries.app_status(plane, DEV, "ttd/skjema")
        assert status.environments[0].clusters[0].revision is None


async def test_a_store_outage_fails_the_deployment_moves_no_tag_and_a_retry_works(
    tmp_path: Path,
) -> None:
    config = settings(tmp_path)
    async with opened(config) as plane:
        tokens = await with_app(plane, tmp_path)
        first = await settle(plane, deploys.deploy(plane, DEV, "ttd/skjema", "tt02"))
        await report(plane, tokens[CLUSTER], event_body(revision=f"tt02@{first.digest}"))
        await apps.set_config(plane, DEV, "ttd/skjema", {"common": {"env": {"C": "1"}}}, "C")

        # The store goes away: its directory is replaced by a file, every write fails.
        store_dir = config.local_store_dir
        shutil.move(store_dir, tmp_path / "store-away")
        store_dir.write_text("not a directory")
        failed = await settle(plane, deploys.deploy(plane, DEV, "ttd/skjema", "tt02"))
        assert failed.state == "failed"
        assert failed.reason is not None
        assert failed.reason.startswith("pushing: ")

        store_dir.unlink()
        shutil.move(tmp_path / "store-away", store_dir)
        store = LocalStore(store_dir)
        assert await store.resolve("ttd/apps/skjema", "tt02") == first.digest  # untouched
        retry = await settle(plane, deploys.deploy(plane, DEV, "ttd/skjema", "tt02"))
        assert retry.state == "progressing"
        assert retry.digest == failed.digest
        assert await store.resolve("ttd/apps/skjema", "tt02") == retry.digest


async def test_unknown_names_give_clear_errors_and_orgs_are_isolated(tmp_path: Path) -> None:
    async with opened(settings(tmp_path)) as plane:
        tokens = await with_app(plane, tmp_path)
        deployment = await settle(plane, deploys.deploy(plane, DEV, "ttd/skjema", "tt02"))
        with pytest.raises(NotFoundError, match="unknown environment 'staging'"):
            await settle(plane, deploys.deploy(plane, DEV, "ttd/skjema", "staging"))
        with pytest.raises(NotFoundError, match="unknown app ttd/nope"):
            await settle(plane, deploys.deploy(plane, DEV, "ttd/nope", "tt02"))
        with pytest.raises(NotFoundError, match="org/app"):
            await queries.history(plane, DEV, "skjema")
        # Another org's token: no reads, no writes, not even whether an id exists.
        with pytest.raises(ForbiddenError):
            await queries.history(plane, OTHER, "ttd/skjema")
        with pytest.raises(ForbiddenError):
            await settle(plane, deploys.deploy(plane, OTHER, "ttd/skjema", "tt02"))
        with pytest.raises(NotFoundError):
            await queries.get_deployment(plane, OTHER, deployment.id)
        assert await apps.list_apps(plane, OTHER) == []
        assert await queries.matrix(plane, OTHER) == []
        assert tokens  # both clusters were bootstrapped


async def test_the_audit_log_is_read_newest_first_by_those_who_may(tmp_path: Path) -> None:
    async with opened(settings(tmp_path)) as plane:
        await with_app(plane, tmp_path)
        await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
        await tokens.create_token(plane, ADMIN, "ci", {"ttd": Role.developer})

        everything = await audit.entries(plane, ADMIN)
        actions = [e.action for e in everything]
        assert actions[0] == "token.create"  # newest first
        assert {"app.create", "cluster.bootstrap", "deployment.deploy"} <= set(actions)
        assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
        deploy_entry = next(e for e in everything if e.action == "deployment.deploy")
        assert (deploy_entry.actor, deploy_entry.org, deploy_entry.target) == (
            "alice",
            "ttd",
            "ttd/skjema@tt02",
        )

        # An app-admin reads its org's entries, never the org-less (token) ones.
        lead = await audit.entries(plane, LEAD)
        assert lead
        assert {e.org for e in lead} == {"ttd"}
        assert await audit.entries(plane, LEAD, org="ttd", action="deployment.deploy") == [
            deploy_entry
        ]
        # A developer may not read it, nor may another org's admin read ttd's.
        with pytest.raises(ForbiddenError, match="app-admin"):
            await audit.entries(plane, DEV, org="ttd")
        assert await audit.entries(plane, DEV) == []
        with pytest.raises(ForbiddenError):
            await audit.entries(plane, OTHER, org="ttd")
        assert all(e.org == "digdir" for e in await audit.entries(plane, OTHER))

        # Paging: the entries before the oldest of a page.
        page = await audit.entries(plane, ADMIN, limit=2)
        rest = await audit.entries(plane, ADMIN, before=page[-1].id)
        assert [e.id for e in page + rest] == [e.id for e in everything]
