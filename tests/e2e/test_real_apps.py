"""The sample apps really run: served by Traefik at ``{org}.apps.{domain}/{org}/{app}`` on the
clusters' real nodes, using the Maskinporten client, database and cache credentials the operators
minted for them.

Each request goes to the cluster's Traefik on loopback with the app's Host header; Traefik sends
it to the Pod on the real node, and the app answers with what it used (never a secret value).

The platform here is its own, smaller one: ``fjord dev up --small`` (one tt02 cluster per org,
each with a real node), up for this module only; the other end-to-end tests share the kwok-only
platform of ``conftest.py``. ``fjord dev down`` must leave the machine as it found it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest
import yaml
from e2e_support import REPO_ROOT, Platform, fjord_cli

from fjord.api.client import FjordClient
from fjord.devcluster.platform import PlatformState
from machine_support import snapshot

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.flux,
    pytest.mark.e2e,
    # Real Pods pull, start and pass their probes for each of up to five deploys in one test, and
    # the first test also waits for `fjord dev up`: on a loaded 2-core machine that took 17
    # minutes for the module, so the suite's 600 s per test is too short here.
    pytest.mark.timeout(1800),
]

TT02 = "ttd.tt02.tt02-1"
DIGDIR_TT02 = "digdir.tt02.tt02-1"
UNPULLABLE = "ghcr.io/fjord-demo/no-such-image:1"


@pytest.fixture(scope="module")
def real_platform(
    tmp_path_factory: pytest.TempPathFactory, cluster_binaries: Path
) -> Iterator[Platform]:
    state_dir = tmp_path_factory.mktemp("real-platform")
    root = state_dir / "platform"
    before = snapshot(str(root))
    up = fjord_cli("dev", "up", "--small", "--state-dir", str(state_dir), "-o", "json")
    try:
        assert up.returncode == 0, up.stderr[-4000:]
        state = PlatformState.load(root)
        assert state is not None
        assert state.real_nodes
        yield Platform(root, json.loads(up.stdout), state)
    finally:
        down = fjord_cli("dev", "down", "--state-dir", str(state_dir))
        assert down.returncode == 0, down.stderr
        assert not root.exists()
        after = snapshot(str(root))
        # Processes, bridges, mounts, iptables rules and kernel settings: as before `up`.
        assert after.node_processes == frozenset()
        assert sorted(after.links ^ before.links) == []
        assert sorted(m for m in after.mounts ^ before.mounts if str(root) in m) == []
        assert after.iptables == before.iptables
        assert after.sysctls == before.sysctls


@pytest.fixture
async def admin(real_platform: Platform) -> AsyncIterator[FjordClient]:
    async with real_platform.api() as client:
        yield client


# ---- helpers ---------------------------------------------------------------------------------


async def route(platform: Platform, cluster_id: str, app: str) -> tuple[str, str]:
    """(URL through Traefik, Host header) of an app, from its Ingress in the cluster."""
    org, name = app.split("/")
    async with platform.kube(cluster_id) as kube:
        ingress = await kube.get("networking.k8s.io/v1", "Ingress", name, f"{org}-{name}")
    assert ingress is not None, app
    rule = ingress["spec"]["rules"][0]
    ingress_url = platform.cluster(cluster_id).ingress_url
    assert ingress_url is not None
    return f"{ingress_url}{rule['http']['paths'][0]['path']}", rule["host"]


async def answer(url: str, host: str) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.get(url, headers={"Host": host})


async def served(
    url: str, host: str, until: Callable[[dict[str, Any]], bool], timeout: float = 180.0
) -> dict[str, Any]:
    """The app's answer once ``until(body)`` holds (a rollout takes a few seconds)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            response = await answer(url, host)
        except httpx2.HTTPError as exc:
            last = repr(exc)
        else:
            if response.status_code == 200:
                last = response.json()
                if until(last):
                    return dict(last)
            else:
                last = (response.status_code, response.text[:300])
        await asyncio.sleep(1.0)
    raise AssertionError(f"{url} (Host {host}) never answered as expected; last: {last}")


async def secret_data(platform: Platform, cluster_id: str, name: str, namespace: str) -> Any:
    async with platform.kube(cluster_id) as kube:
        found = await kube.wait_for(
            "v1", "Secret", name, namespace, until=lambda o: o is not None, timeout=180
        )
    return {k: base64.b64decode(v).decode() for k, v in (found.get("data") or {}).items()}


def tokens_issued(platform: Platform, client_id: str) -> int:
    dump = httpx2.get(f"{platform.info['emulator_url']}test/dump", timeout=10).json()
    return int(dump["tokens_by_client"].get(client_id, 0))


async def register(
    platform: Platform, client: FjordClient, tmp_path: Path, name: str, *, database: bool
) -> str:
    """``ttd/{name}``: the platform-app example under another name, in its own repository."""
    source = tmp_path / name
    shutil.copytree(REPO_ROOT / "examples" / "platform-app", source)
    spec = yaml.safe_load((source / "fjord.yaml").read_text())
    spec["app"] = name
    if not database:
        spec.pop("postgresql")
    (source / "fjord.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    app = f"ttd/{name}"
    await client.create_app(app, platform.push_app(app, source))
    return app


async def deploy(platform: Platform, client: FjordClient, app: str) -> dict[str, Any]:
    started = await client.deploy(app, "tt02")
    return await platform.wait(client, started.id)


async def configure(client: FjordClient, app: str, values: Any) -> None:
    current = await client.get_config(app)
    await client.set_config(app, values, "e2e", expected_version=current.version if current else 0)


def can_log_in(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            return conn.execute("select 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


# ---- the sample apps -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "cluster_id", "secret"),
    [("ttd/skjema", TT02, "skjema-pg-forms"), ("digdir/varsel", DIGDIR_TT02, "varsel-redis")],
)
async def test_each_sample_app_answers_through_traefik_with_what_it_used(
    real_platform: Platform, app: str, cluster_id: str, secret: str
) -> None:
    org, name = app.split("/")
    namespace = f"{org}-{name}"
    url, host = await route(real_platform, cluster_id, app)
    assert host == f"{org}.apps.fjord.localhost"
    assert url.endswith(f"/{org}/{name}")
    response = await answer(url, host)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["app"] == name

    # A token from the emulator, for the client the Maskinporten operator registered.
    client = await secret_data(real_platform, cluster_id, f"{name}-maskinporten", namespace)
    assert body["maskinporten"]["obtained"] is True
    assert body["maskinporten"]["client_id"] == client["MASKINPORTEN_CLIENT_ID"]
    assert body["maskinporten"]["scope"] == client["MASKINPORTEN_SCOPES"]
    assert tokens_issued(real_platform, client["MASKINPORTEN_CLIENT_ID"]) >= 1

    # The database or cache, logged into with the credentials operator's user.
    credentials = await secret_data(real_platform, cluster_id, secret, namespace)
    if "database" in credentials:
        [used] = body["postgresql"]
        assert used["user"] == credentials["user"]
        assert used["current_database"] == credentials["database"]
        assert body["redis"] is None
    else:
        assert body["redis"]["user"] == credentials["username"]
        assert body["redis"]["key"].startswith(credentials["keyPrefix"])
        assert body["redis"]["value"] >= 1
        assert body["postgresql"] == []
    # What the app says it used never includes a secret value.
    for value in (credentials["password"], credentials["url"], client["MASKINPORTEN_JWK"]):
        assert value not in response.text

    # Another org's host is not routed by this org's cluster.
    other = "digdir" if org == "ttd" else "ttd"
    assert (await answer(url, f"{other}.apps.fjord.localhost")).status_code == 404


async def test_a_new_release_is_served_broken_ones_fail_with_the_pods_reason_and_rollback_works(
    real_platform: Platform, admin: FjordClient, tmp_path: Path
) -> None:
    app = await register(real_platform, admin, tmp_path, "e2e-served", database=False)
    v1 = await deploy(real_platform, admin, app)
    assert v1["state"] == "ready", v1
    url, host = await route(real_platform, TT02, app)
    first = await served(url, host, lambda b: b.get("greeting") == "hello")
    assert first["maskinporten"]["obtained"] is True

    # A new release: the response changes.
    await configure(admin, app, {"common": {"env": {"GREETING": "second release"}}})
    v2 = await deploy(real_platform, admin, app)
    assert v2["state"] == "ready", v2
    assert v2["digest"] != v1["digest"]
    await served(url, host, lambda b: b.get("greeting") == "second release")

    # An image that cannot be pulled: failed with the kubelet's reason, v2 keeps serving.
    await configure(admin, app, {"common": {"env": {"GREETING": "v3"}, "image": UNPULLABLE}})
    missing = await deploy(real_platform, admin, app)
    assert missing["state"] == "failed", missing
    assert "ErrImagePull" in missing["reason"] or "ImagePullBackOff" in missing["reason"]
    assert "no-such-image" in missing["reason"]
    await served(url, host, lambda b: b.get("greeting") == "second release")

    # A release that crashes at start (the sample service cannot listen on a port that is not a
    # number): CrashLoopBackOff, not the previous failure's reason; v2 keeps serving.
    await configure(admin, app, {"common": {"env": {"GREETING": "v4", "PORT": "not-a-port"}}})
    crashing = await deploy(real_platform, admin, app)
    assert crashing["state"] == "failed", crashing
    assert "CrashLoopBackOff" in crashing["reason"], crashing["reason"]
    await served(url, host, lambda b: b.get("greeting") == "second release")

    # Rollback to the first release: its response is back.
    back = real_platform.cli("rollback", app, "--env", "tt02", "--to", v1["digest"], "-o", "json")
    assert back.returncode == 0, back.stderr
    rollback = json.loads(back.stdout)
    assert (rollback["state"], rollback["digest"]) == ("ready", v1["digest"])
    await served(url, host, lambda b: b.get("greeting") == "hello")


async def test_rotation_gives_new_pods_new_credentials_and_the_old_ones_keep_working(
    real_platform: Platform,
) -> None:
    app, namespace = "ttd/skjema", "ttd-skjema"
    url, host = await route(real_platform, TT02, app)
    old = await secret_data(real_platform, TT02, "skjema-pg-forms", namespace)
    before = await served(url, host, lambda b: bool(b.get("postgresql")))
    assert before["postgresql"][0]["user"] == old["user"]

    rotated = real_platform.cli("rotate", app, "--env", "tt02", "-o", "json")
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["state"] == "ready"
    new = await secret_data(real_platform, TT02, "skjema-pg-forms-r1", namespace)
    assert new["user"] != old["user"]
    # The new Pods log in as the new user; the old user still works (for the old ReplicaSet).
    after = await served(url, host, lambda b: b["postgresql"][0]["user"] == new["user"])
    assert after["pod"] != before["pod"]
    assert can_log_in(old["url"])
