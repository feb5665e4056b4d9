"""Outbound notifications: the pure parts (bodies, signature, retry verdicts) branch by branch,
then on SQLite with a real local HTTP receiver: signed CloudEvents arrive in order, and a
receiver that is down is retried with backoff, then disabled, and enabled again by hand."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from test_control_support import (
    ADMIN,
    CLUSTER,
    event_body,
    opened,
    report,
    settings,
    settle,
    with_app,
)

from fjord.control import ControlPlane, audit, deploys, notifications
from fjord.retry import RetryPolicy

# ---- pure ------------------------------------------------------------------------------------

POLICY = RetryPolicy(attempts=3, initial_delay=1.0, multiplier=2.0, max_delay=60, jitter=0)


def test_a_2xx_is_delivered() -> None:
    assert notifications.judge(POLICY, 1, 204, None) == notifications.Verdict(
        True, None, "answered 204"
    )


def test_transient_failures_wait_longer_each_time_and_honour_retry_after() -> None:
    assert notifications.judge(POLICY, 1, 503, None).retry_in == 1.0
    assert notifications.judge(POLICY, 2, None, "ConnectError").retry_in == 2.0
    assert notifications.judge(POLICY, 1, 429, None, retry_after=30).retry_in == 30


def test_the_last_try_or_an_answer_that_will_not_change_fails_for_good() -> None:
    assert notifications.judge(POLICY, 3, 503, None) == notifications.Verdict(
        False, None, "answered 503"
    )
    assert notifications.judge(POLICY, 1, 404, None).retry_in is None


def sample() -> dict[str, Any]:
    return {
        "type": notifications.HALTED,
        "data": {
            "org": "ttd",
            "app": "skjema",
            "environment": "tt02",
            "deployment": 7,
            "kind": "deploy",
            "message": "halted at wave 2 of 3: ttd.tt02.c3: health check failed",
        },
    }


def test_bodies_per_format_and_the_signature() -> None:
    body, content_type = notifications.body_of("cloudevents", sample())
    assert content_type == "application/cloudevents+json"
    assert json.loads(body)["type"] == "dev.fjord.deployment.halted"
    slack, slack_type = notifications.body_of("slack", sample())
    assert slack_type == "application/json"
    assert json.loads(slack) == {
        "text": "ttd/skjema → tt02: deployment 7 (deploy) halted: halted at wave 2 of 3:"
        " ttd.tt02.c3: health check failed"
    }
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert notifications.signature("k", body) == f"sha256={expected}"


# ---- a real receiver -------------------------------------------------------------------------


class Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read()))
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    found.url = f"http://127.0.0.1:{port}/hook"
    yield found
    await runner.cleanup()


async def pump_until(plane: ControlPlane, done: Any) -> None:
    deadline = time.monotonic() + 60
    while not await done():
        assert time.monotonic() < deadline
        await notifications.pump(plane)
        await asyncio.sleep(0.05)


async def test_signed_events_arrive_in_order(tmp_path: Path, receiver: Receiver) -> None:
    async with opened(settings(tmp_path)) as plane:
        tokens = await with_app(plane, tmp_path)
        created = await notifications.create_hook(plane, ADMIN, "ttd", receiver.url)
        deployment = await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
        await report(plane, tokens[CLUSTER], event_body(revision=f"tt02@{deployment.digest}"))
        promotion = await settle(
            plane, deploys.promote(plane, ADMIN, "ttd/skjema", to="production")
        )
        assert promotion.state == "awaiting_approval"

        async def four() -> bool:
            return len(receiver.got) >= 4

        await pump_until(plane, four)
        events = []
        for headers, body in receiver.got:
            assert headers["Content-Type"] == "application/cloudevents+json"
            assert headers["X-Fjord-Signature"] == notifications.signature(created.secret, body)
            events.append(json.loads(body))
        assert [(e["type"], e["data"]["deployment"]) for e in events] == [
            (notifications.QUEUED, deployment.id),
            (notifications.READY, deployment.id),
            (notifications.QUEUED, promotion.id),
            (notifications.AWAITING_APPROVAL, promotion.id),
        ]
        assert events[1]["data"]["digest"] == deployment.digest
        assert events[1]["source"] == "/fjord/ttd/skjema"
        assert len({e["id"] for e in events}) == 4
        log = await notifications.deliveries(plane, ADMIN, created.hook.id)
        assert [(d.state, d.attempts) for d in log] == [("delivered", 1)] * 4


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_receiver_that_is_down_is_retried_then_disabled(tmp_path: Path) -> None:
    config = settings(
        tmp_path,
        notification_attempts=3,
        notification_first_wait_seconds=0.05,
        notification_disable_after=2,
    )
    async with opened(config) as plane:
        tokens = await with_app(plane, tmp_path)
        url = f"http://127.0.0.1:{closed_port()}/hook"
        created = await notifications.create_hook(plane, ADMIN, "ttd", url, format_="slack")
        deployment = await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
        await report(plane, tokens[CLUSTER], event_body(revision=f"tt02@{deployment.digest}"))

        async def disabled() -> bool:
            hooks = await notifications.list_hooks(plane, ADMIN, "ttd")
            return not hooks[0].enabled

        await pump_until(plane, disabled)
        hook = (await notifications.list_hooks(plane, ADMIN, "ttd"))[0]
        assert hook.failures == 2
        assert hook.disabled_reason is not None
        assert hook.disabled_reason.startswith("disabled after 2 failed deliveries in a row")
        log = await notifications.deliveries(plane, ADMIN, created.hook.id)
        assert [(d.event_type, d.state, d.attempts) for d in reversed(log)] == [
            (notifications.QUEUED, "failed", 3),
            (notifications.READY, "failed", 3),
        ]
        assert all("ConnectError" in (d.last_error or "") for d in log)

        enabled = await notifications.enable_hook(plane, ADMIN, created.hook.id)
        assert (enabled.enabled, enabled.failures, enabled.disabled_reason) == (True, 0, None)
        entries = await audit.entries(plane, ADMIN, org="ttd")
        assert entries[0].action == "notification.enable"
