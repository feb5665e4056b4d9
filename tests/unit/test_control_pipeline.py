"""Deployment pipelines on SQLite: declared steps recorded with start and end, a replica that
stops mid-step is continued by another from its first unfinished step, the approval gate gives
the claim up, locks die with their owner's lease, inputs are pinned at request time, rotation
runs on the server."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from test_control_support import (
    ADMIN,
    CLUSTER,
    demo_platform,
    opened,
    settings,
    with_app,
)
from typer.testing import CliRunner

import gitea_support
from fjord.cli.main import app
from fjord.control import (
    ConflictError,
    ForbiddenError,
    apps,
    deploys,
    locks,
    pipeline,
    queries,
    states,
    system_actor,
)
from fjord.control.models import ConfigVersion, Deployment, Lock
from fjord.control.worker import claim, drain, renew, run_job
from fjord.stores import LocalStore
from gitea_support import EXAMPLES

# Longer than a build takes (it reads the pinned commit out of the app's mirror and renders),
# so the crashed replica's lease is still held when the test checks that nobody may take it.
LEASE = 2.0


class Crash(BaseException):
    """The process stops here: nothing after it runs, nothing is cleaned up."""


def crash_at(step: str, phase: str):  # type: ignore[no-untyped-def]
    async def hook(job: pipeline.Job, at_step: str, at_phase: str) -> None:
        if (at_step, at_phase) == (step, phase):
            raise Crash

    return hook


def test_every_kind_declares_its_steps_in_store_order() -> None:
    for kind, steps in pipeline.PIPELINES.items():
        names = [s.name for s in steps]
        assert len(set(names)) == len(names), kind
        if kind == states.BUILD:  # a pushed tag's release: no environment, no tag moves
            assert names == ["building", "pushing"]
            continue
        assert names[-1] == "receivers", kind  # best effort, after everything that matters
        if "tagging" in names:
            assert names.index("sync-root") < names.index("tagging"), kind
        if "pushing" in names:
            assert names.index("pushing") < names.index("sync-root"), kind
    assert set(pipeline.PIPELINES) == {
        "deploy",
        "rotate",
        "promote",
        "rollback",
        "undeploy",
        "build",
    }


@pytest.mark.parametrize(
    ("step", "phase"),
    [("building", "ran"), ("pushing", "started"), ("sync-root", "ran"), ("tagging", "started")],
)
async def test_a_replica_that_stops_mid_way_is_continued_by_another(
    tmp_path: Path, step: str, phase: str
) -> None:
    config = settings(tmp_path, lease_seconds=LEASE)
    async with opened(config) as first, opened(config) as second:
        assert first.replica != second.replica
        await with_app(first, tmp_path)
        requested = await deploys.deploy(first, ADMIN, "ttd/skjema", "tt02")
        job = await claim(first)
        assert job is not None
        assert job.id == requested.id
        with pytest.raises(Crash):
            await run_job(first, job, crash_at(step, phase))
        # Its heartbeat ran until the crash: claimed by the first replica until the lease ends.
        await renew(first)
        assert await claim(second) is None
        await asyncio.sleep(LEASE * 1.5)
        await drain(second)

        done = await queries.get_deployment(second, ADMIN, requested.id)
        assert done.state == "progressing", done.reason
        assert "resumed" in [t.reason for t in done.timeline]
        by_step = {s.name: s for s in done.steps}
        assert all(s.finished_at is not None for s in done.steps)
        assert by_step[step].replica == second.replica
        assert by_step[step].attempts == 2
        assert by_step["building"].replica == (
            second.replica if step == "building" else first.replica
        )
        assert by_step["receivers"].replica == second.replica
        store = LocalStore(config.local_store_dir)
        assert await store.resolve("ttd/apps/skjema", "tt02") == done.digest
        async with second.db.session() as session:
            row = await session.get(Deployment, requested.id)
            assert row is not None
            assert (row.owner, row.lease_expires) == (None, None)


async def test_the_approval_gate_gives_the_claim_up_and_approve_queues_it_again(
    tmp_path: Path,
) -> None:
    async with opened(settings(tmp_path)) as plane:
        await with_app(plane, tmp_path)
        requested = await deploys.deploy(plane, ADMIN, "ttd/skjema", "production")
        await drain(plane)
        waiting = await queries.get_deployment(plane, ADMIN, requested.id)
        assert waiting.state == "awaiting_approval"
        assert [(s.name, s.finished_at is None) for s in waiting.steps][-1] == ("approval", True)
        async with plane.db.session() as session:
            row = await session.get(Deployment, waiting.id)
            assert row is not None
            assert row.owner is None
        # Four eyes in production: the requester may not approve, another admin may.
        with pytest.raises(ForbiddenError, match="four eyes"):
            await deploys.approve(plane, ADMIN, waiting.id)
        approved = await deploys.approve(plane, system_actor("bob"), waiting.id)
        assert approved.state == "queued"
        with pytest.raises(ConflictError, match="not awaiting approval"):
            await deploys.approve(plane, system_actor("bob"), waiting.id)
        await drain(plane)
        done = await queries.get_deployment(plane, ADMIN, waiting.id)
        assert done.state == "progressing"
        assert {s.name: s.attempts for s in done.steps}["approval"] == 2
        assert {s.name: s.attempts for s in done.steps}["building"] == 1


async def test_a_lock_of_a_replica_that_died_frees_itself_within_its_lease(tmp_path: Path) -> None:
    async with opened(settings(tmp_path, lease_seconds=LEASE)) as plane:
        await with_app(plane, tmp_path)
        # A replica took the sync-root lock and died: its heartbeat no longer renews it.
        assert await locks.try_acquire(plane.db, "syncroot:ttd/tt02", "dead-replica", LEASE)
        assert not await locks.try_acquire(plane.db, "syncroot:ttd/tt02", "other", LEASE)
        requested = await deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02")
        await drain(plane)
        done = await queries.get_deployment(plane, ADMIN, requested.id)
        assert done.state == "progressing", done.reason
        async with plane.db.session() as session:
            assert (await session.scalars(select(Lock))).all() == []


async def test_inputs_are_pinned_when_the_request_is_accepted(tmp_path: Path) -> None:
    gitea = gitea_support.shared()
    repo = gitea.push_app("ttd", "platform-app", name="skjema")
    async with opened(settings(tmp_path)) as plane:
        await with_app(plane, tmp_path, repo)
        await apps.set_config(plane, ADMIN, "ttd/skjema", {"common": {"env": {"A": "1"}}}, "A1")
        first = await deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02")
        await apps.set_config(plane, ADMIN, "ttd/skjema", {"common": {"env": {"A": "2"}}}, "A2")
        assert first.config_version == 1
        # Into another environment, so the second request does not supersede the first.
        second = await deploys.deploy(plane, ADMIN, "ttd/skjema", "production")
        assert second.config_version == 2
        await drain(plane)
        built = await queries.get_deployment(plane, ADMIN, first.id)
        assert (built.state, built.config_version) == ("progressing", 1)

        # The branch moves after the request: the deployment builds the commit it pinned.
        pinned = await deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02", git_ref="main")
        moved = tmp_path / "moved"
        shutil.copytree(EXAMPLES / "platform-app", moved)
        (moved / "extra.txt").write_text("changed\n")
        newer = gitea.push(repo, moved, message="moved on")
        await drain(plane)
        built = await queries.get_deployment(plane, ADMIN, pinned.id)
        assert built.state == "progressing", built.reason
        assert (built.ref, built.commit) == ("main", repo.commit)
        assert newer != repo.commit


async def test_rotation_is_a_server_side_config_change_and_deploy(tmp_path: Path) -> None:
    async with opened(settings(tmp_path)) as plane:
        await with_app(plane, tmp_path)
        await apps.set_config(
            plane, ADMIN, "ttd/skjema", {"common": {"credentialsRotation": 4}}, "start at 4"
        )
        rotations = await asyncio.gather(
            *(deploys.rotate(plane, ADMIN, "ttd/skjema", "tt02", reason=f"r{i}") for i in range(5))
        )
        assert sorted(r.config_version for r in rotations) == [2, 3, 4, 5, 6]
        await drain(plane)
        async with plane.db.session() as session:
            versions = (
                await session.scalars(select(ConfigVersion).order_by(ConfigVersion.version))
            ).all()
        # No lost update: every rotation raised the counter once more.
        counters = [v.values.get("environments", {}).get("tt02", {}).get("credentialsRotation")
                    for v in versions[1:]]  # fmt: skip
        assert counters == [5, 6, 7, 8, 9]
        final = sorted(
            [await queries.get_deployment(plane, ADMIN, r.id) for r in rotations],
            key=lambda d: d.id,
        )
        assert final[-1].state == "progressing"
        assert final[-1].kind == states.ROTATE
        assert final[-1].config_version == 6
        assert {f.state for f in final[:-1]} <= {"superseded"}
        store = LocalStore(settings(tmp_path).local_store_dir)
        assert await store.resolve("ttd/apps/skjema", "tt02") == final[-1].digest
        assert CLUSTER  # the tt02 cluster exists for this org


def test_the_in_process_cli_publishes_what_it_queued_before_it_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = tmp_path / "platform.yaml"
    platform.write_text(
        json.dumps(demo_platform().model_dump(mode="json", by_alias=True, exclude_none=True))
    )
    monkeypatch.setenv("FJORD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FJORD_PLATFORM", str(platform))
    monkeypatch.delenv("FJORD_SERVER", raising=False)
    runner = CliRunner()

    def fjord(*args: str) -> Any:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout) if "-o" in args else None

    gitea = gitea_support.shared()
    monkeypatch.setenv("FJORD_GIT_TOKEN", gitea.tokens["ttd"])
    fjord("app", "credential", "ttd")
    fjord("app", "create", "ttd/skjema", "--repo", gitea.push_app("ttd", "platform-app").clone_url)
    queued = fjord("deploy", "ttd/skjema", "--env", "tt02", "--no-wait", "-o", "json")
    assert queued["state"] in ("queued", "publishing", "progressing")
    rotated = fjord("rotate", "ttd/skjema", "--env", "tt02", "--no-wait", "-o", "json")
    assert rotated["kind"] == "rotate"
    # The command's own worker published both before the command exited.
    history = fjord("history", "ttd/skjema", "-o", "json")
    assert [(d["kind"], d["state"]) for d in history] == [
        ("rotate", "progressing"),
        ("deploy", "superseded"),
    ]
    config = fjord("config", "show", "ttd/skjema", "-o", "json")
    assert config["values"]["environments"]["tt02"]["credentialsRotation"] == 1
