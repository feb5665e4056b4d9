"""Rollouts in waves on SQLite and a local store, with clusters' reports as signed Flux events:
each wave's clusters get their tag only when the wave starts, a failure halts, and a halted
rollout is resumed, rolled back or aborted (each audited, through the HTTP API too)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from pathlib import Path

import httpx2
import pytest
from test_control_support import ADMIN, demo_platform, event_body, opened, report, settings

import gitea_support
from fjord.api import ApiSettings, create_app
from fjord.api.client import FjordClient
from fjord.control import (
    ConflictError,
    ControlPlane,
    Role,
    apps,
    audit,
    clusters,
    credentials,
    deploys,
    queries,
    rollouts,
    states,
)
from fjord.control.tokens import create_token
from fjord.control.views import DeploymentView
from fjord.control.worker import drain
from fjord.spec.platform import Cluster, Environment, Org, Rollout, Wave
from fjord.stores import LocalStore

APP = "ttd/skjema"
NAMES = ("c1", "c2", "c3")
_clock = itertools.count(1)


def rollout_settings(tmp_path: Path, *, rollback_on_failure: bool = False):  # type: ignore[no-untyped-def]
    base = demo_platform()
    platform = base.model_copy(
        update={
            "environments": [
                Environment(
                    name="tt02",
                    rollout=Rollout(
                        waves=[Wave(clusters=["c1"]), Wave(clusters=["c2"])],
                        soak_seconds=0,
                        rollback_on_failure=rollback_on_failure,
                    ),
                ),
                Environment(name="production"),
            ],
            "orgs": {"ttd": Org(clusters={"tt02": [Cluster(name=n) for n in NAMES]})},
        }
    )
    return settings(tmp_path, platform=platform, poll_seconds=0.05)


async def registered(plane: ControlPlane) -> dict[str, str]:
    gitea = gitea_support.shared()
    await credentials.set_credential(plane, ADMIN, "ttd", gitea.tokens["ttd"])
    repo = gitea.push_app("ttd", "platform-app", name="skjema")
    await apps.create_app(plane, ADMIN, APP, repo.clone_url)
    tokens = {}
    for name in NAMES:
        await clusters.bootstrap(plane, ADMIN, "ttd", "tt02", name)
        tokens[name] = await clusters.cluster_token(plane, ADMIN, f"ttd.tt02.{name}")
    return tokens


def stamp() -> str:
    """Increasing event timestamps (a cell ignores an event older than the one it shows)."""
    moment = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=next(_clock))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def applied(plane: ControlPlane, tokens: dict[str, str], name: str, digest: str) -> None:
    body = event_body(revision=f"tt02.{name}@{digest}", timestamp=stamp())
    await report(plane, tokens[name], body, cluster=f"ttd.tt02.{name}")


async def unhealthy(plane: ControlPlane, tokens: dict[str, str], name: str, digest: str) -> None:
    body = event_body(
        severity="error",
        reason="HealthCheckFailed",
        message="health check failed after 30s: Deployment/ttd-skjema/skjema status: 'InProgress'",
        revision=f"tt02.{name}@{digest}",
        timestamp=stamp(),
    )
    await report(plane, tokens[name], body, cluster=f"ttd.tt02.{name}")


async def run_until(plane: ControlPlane, deployment_id: int, done: object) -> DeploymentView:
    """Let this process's worker run what is due until ``done(view)``; generous timeout."""
    deadline = time.monotonic() + 60
    while True:
        await drain(plane)
        view = await queries.get_deployment(plane, ADMIN, deployment_id)
        if done(view):  # type: ignore[operator]
            return view
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.05)


def wave_state(view: DeploymentView, number: int) -> str:
    return view.rollout.waves[number - 1].state if view.rollout else "none"


async def tags(plane: ControlPlane) -> dict[str, str | None]:
    store = LocalStore(plane.settings.data_dir / "store")
    return {n: await store.resolve("ttd/apps/skjema", f"tt02.{n}") for n in NAMES}


def cluster_states(view: DeploymentView) -> dict[str, str]:
    return {c.cluster.rsplit(".", 1)[1]: c.state for c in view.clusters}


async def test_waves_move_one_after_another_halt_and_resume(tmp_path: Path) -> None:
    async with opened(rollout_settings(tmp_path)) as plane:
        tokens = await registered(plane)
        first = await deploys.deploy(plane, ADMIN, APP, "tt02")
        view = await run_until(
            plane, first.id, lambda v: v.rollout and v.rollout.waves[0].started_at
        )
        assert view.state == states.ROLLING_OUT
        assert [w.clusters for w in view.rollout.waves] == [  # type: ignore[union-attr]
            ["ttd.tt02.c1"],
            ["ttd.tt02.c2"],
            ["ttd.tt02.c3"],
        ]
        digest = view.digest
        assert digest is not None
        # Only the first wave's cluster has its tag; the others still wait for theirs.
        assert await tags(plane) == {"c1": digest, "c2": None, "c3": None}
        assert cluster_states(view) == {"c1": "pending", "c2": "waiting", "c3": "waiting"}

        await applied(plane, tokens, "c1", digest)
        view = await run_until(plane, first.id, lambda v: wave_state(v, 2) == "running")
        assert wave_state(view, 1) == "done"
        assert await tags(plane) == {"c1": digest, "c2": digest, "c3": None}

        # Wave 2's cluster fails with Flux's message: the rollout halts, wave 3 never starts.
        await unhealthy(plane, tokens, "c2", digest)
        view = await run_until(plane, first.id, lambda v: v.state == states.HALTED)
        assert view.reason is not None
        assert view.reason.startswith("halted at wave 2 of 3: ttd.tt02.c2: health check failed")
        assert wave_state(view, 2) == "halted"
        assert (await tags(plane))["c3"] is None
        await rollouts.resume(plane, ADMIN, first.id)
        with pytest.raises(ConflictError):  # only a halted rollout resumes
            await rollouts.resume(plane, ADMIN, first.id)

        # Resumed: the gate starts over; the cluster recovers, the last wave runs, all ready.
        await applied(plane, tokens, "c2", digest)
        view = await run_until(plane, first.id, lambda v: wave_state(v, 3) == "running")
        assert await tags(plane) == {"c1": digest, "c2": digest, "c3": digest}
        await applied(plane, tokens, "c3", digest)
        view = await run_until(plane, first.id, lambda v: v.state == states.READY)
        assert view.rollout is not None
        assert view.rollout.state == "done"
        assert [w.state for w in view.rollout.waves] == ["done", "done", "done"]
        started = [w.started_at for w in view.rollout.waves]
        ready = [w.ready_at for w in view.rollout.waves]
        # Each wave started only after the one before was ready (and soaked: 0 s here).
        assert started[1] > ready[0]  # type: ignore[operator]
        assert started[2] > ready[1]  # type: ignore[operator]
        entries = await audit.entries(plane, ADMIN, org="ttd")
        assert [e.action for e in entries if e.action.startswith("rollout.")] == ["rollout.resume"]


async def test_a_halted_rollout_rolls_back_to_what_each_cluster_ran(tmp_path: Path) -> None:
    async with opened(rollout_settings(tmp_path)) as plane:
        tokens = await registered(plane)
        first = await deploys.deploy(plane, ADMIN, APP, "tt02")
        for number, name in enumerate(NAMES, start=1):
            view = await run_until(
                plane, first.id, lambda v, n=number: wave_state(v, n) != "pending"
            )
            assert view.digest is not None
            await applied(plane, tokens, name, view.digest)
        v1 = await run_until(plane, first.id, lambda v: v.state == states.READY)
        assert v1.digest is not None

        await apps.set_config(plane, ADMIN, APP, {"common": {"env": {"FLEET": "v2"}}}, "v2", 0)
        second = await deploys.deploy(plane, ADMIN, APP, "tt02")
        view = await run_until(plane, second.id, lambda v: wave_state(v, 1) == "running")
        v2 = view.digest
        assert v2 is not None and v2 != v1.digest  # noqa: PT018
        await applied(plane, tokens, "c1", v2)
        await run_until(plane, second.id, lambda v: wave_state(v, 2) == "running")
        await unhealthy(plane, tokens, "c2", v2)
        await run_until(plane, second.id, lambda v: v.state == states.HALTED)
        assert await tags(plane) == {"c1": v2, "c2": v2, "c3": v1.digest}

        # Through the HTTP API, as the CLI and UI do: a roll back, audited.
        app = create_app(ApiSettings(control=plane.settings), plane=plane)
        token = await create_token(plane, ADMIN, "lead", {"ttd": Role.app_admin})
        http = httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app),
            base_url="http://fjord.test",
            headers={"Authorization": f"Bearer {token.token}"},
        )
        async with FjordClient(http) as api:
            asked = await api.rollout_action(second.id, "rollback")
        assert asked.state == states.ROLLING_OUT
        view = await run_until(plane, second.id, lambda v: v.state == states.ROLLED_BACK)
        assert await tags(plane) == {"c1": v1.digest, "c2": v1.digest, "c3": v1.digest}
        assert view.reason is not None
        assert "rolled back ttd.tt02.c1, ttd.tt02.c2 to their previous release" in view.reason
        entries = await audit.entries(plane, ADMIN, org="ttd")
        assert (entries[0].action, entries[0].actor) == ("rollout.rollback", "token:lead")


async def test_halting_rolls_back_at_once_when_configured_and_abort_stops(tmp_path: Path) -> None:
    async with opened(rollout_settings(tmp_path, rollback_on_failure=True)) as plane:
        tokens = await registered(plane)
        first = await deploys.deploy(plane, ADMIN, APP, "tt02")
        view = await run_until(plane, first.id, lambda v: wave_state(v, 1) == "running")
        assert view.digest is not None
        await unhealthy(plane, tokens, "c1", view.digest)
        view = await run_until(plane, first.id, lambda v: v.state in states.FINAL)
        # Nothing ran before: there is nothing to return to, and the message says so.
        assert view.state == states.ROLLED_BACK
        assert view.reason is not None
        assert "ttd.tt02.c1 had none before and keep this one" in view.reason
        assert (await tags(plane))["c2"] is None

        again = await deploys.deploy(plane, ADMIN, APP, "tt02")
        await run_until(plane, again.id, lambda v: wave_state(v, 1) == "running")
        await rollouts.abort(plane, ADMIN, again.id)
        view = await queries.get_deployment(plane, ADMIN, again.id)
        assert view.state == states.ABORTED
        await drain(plane)  # nothing runs for it any more
        assert (await tags(plane))["c2"] is None
        entries = await audit.entries(plane, ADMIN, org="ttd")
        assert entries[0].action == "rollout.abort"
