"""A rollout in waves across four real clusters with Flux (kwok nodes), a registry and a server.

Three waves: ``c1`` by name, ``c2`` + ``c3`` by label, ``c4`` the rest. Each cluster follows its
own tag (``tt02.cN``), moved only when its wave starts; fjord calls that cluster's Receiver and
waits for Flux to report the release healthy there, soaks, and only then starts the next wave.
Then a release that cannot run in ``c3`` (its node cordoned: the new Pod never schedules, Flux's
health check fails) halts the rollout in wave 2; the platform rolls the clusters that got it
back (configured), and ``c4`` never receives it. Flux intervals are 10 minutes, so every pull
here was started by fjord calling a Receiver.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from control_support import REPO_ROOT, fjord_cli, make_token

from fjord.api import ApiSettings
from fjord.api.client import FjordClient
from fjord.api.server import ApiServer
from fjord.control import ControlSettings, Role
from fjord.control.views import DeploymentView
from fjord.devcluster.cluster import ClusterState, LocalCluster
from fjord.devcluster.gitea import SeededRepo
from fjord.devcluster.registry import LocalRegistry
from fjord.kube import Kube, is_true
from fjord.spec import PlatformConfig
from fjord.spec.platform import (
    Cluster,
    Environment,
    IngressRouting,
    OciStore,
    Org,
    Rollout,
    Wave,
)
from fjord.stores import RegistryStore
from gitea_support import SessionGitea

pytestmark = [pytest.mark.cluster, pytest.mark.flux]

APP = "ttd/skjema"
NS = "ttd-skjema"
NAMES = ("c1", "c2", "c3", "c4")
SOAK = 2
KUSTOMIZE = "kustomize.toolkit.fluxcd.io/v1"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ClusterState]]:
    """Four clusters with Flux, started side by side."""
    root = tmp_path_factory.mktemp("fleet")
    locals_ = {name: LocalCluster(root / name, f"fleet-{name}") for name in NAMES}
    try:
        with ThreadPoolExecutor(len(NAMES)) as pool:
            started = {n: pool.submit(c.up, nodes=1, flux=True) for n, c in locals_.items()}
            yield {n: f.result() for n, f in started.items()}
    finally:
        for local in locals_.values():
            local.down()


def platform(registry: LocalRegistry) -> PlatformConfig:
    rollout = Rollout(
        waves=[Wave(clusters=["c1"]), Wave(match_labels={"ring": "two"})],
        soak_seconds=SOAK,
        rollback_on_failure=True,
    )
    labels = {"c2": {"ring": "two"}, "c3": {"ring": "two"}}
    return PlatformConfig(
        domain="fjord.localhost",
        environments=[Environment(name="tt02", rollout=rollout), Environment(name="production")],
        orgs={
            "ttd": Org(
                store=OciStore(kind="oci", registry=registry.host, plain_http=True),
                clusters={"tt02": [Cluster(name=n, labels=labels.get(n, {})) for n in NAMES]},
            )
        },
        routing=IngressRouting(flavour="ingress"),
    )


@pytest.fixture
def settings(tmp_path: Path, registry: LocalRegistry) -> ControlSettings:
    return ControlSettings(
        data_dir=tmp_path / "data",
        platform=platform(registry),
        deploy_timeout_seconds=240,
        kustomization_timeout="30s",
        flux_interval="10m",
    )


@pytest.fixture
def server(settings: ControlSettings) -> Iterator[ApiServer]:
    with ApiServer(ApiSettings(control=settings, sweep_seconds=1.0)) as running:
        yield running


@pytest.fixture
async def admin_token(settings: ControlSettings) -> str:
    return await make_token(settings, "admin", {"*": Role.platform_admin})


@pytest.fixture
async def admin(server: ApiServer, admin_token: str) -> AsyncIterator[FjordClient]:
    async with FjordClient.remote(server.url, admin_token) as client:
        yield client


async def wait_until(
    api: FjordClient, deployment_id: int, done: Callable[[DeploymentView], bool]
) -> DeploymentView:
    """Poll the deployment until ``done`` (or it settles); a generous deadline."""
    deadline = time.monotonic() + 300
    while True:
        view = await api.get_deployment(deployment_id)
        if done(view) or view.done or time.monotonic() > deadline:
            return view
        await asyncio.sleep(0.2)


async def install_crds(kube: Kube) -> None:
    """fjord's CRDs (the platform app asks for a MaskinportenClient and AppCredentials)."""
    for path in sorted((REPO_ROOT / "deploy" / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        await kube.apply(crd, field_manager="test", force=True)
        await kube.wait_for(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            crd["metadata"]["name"],
            until=lambda o: is_true(o, "Established"),
        )


async def history(state: ClusterState) -> list[dict[str, Any]]:
    """The app Kustomization's history in one cluster (Flux keeps the last revisions)."""
    async with await Kube.connect(state.kubeconfig) as kube:
        found = await kube.get(KUSTOMIZE, "Kustomization", "skjema", NS)
    return list(((found or {}).get("status") or {}).get("history") or [])


def first_applied(entries: list[dict[str, Any]], digest: str) -> dt.datetime | None:
    for entry in entries:
        if entry.get("digest") and digest in str(entry.get("metadata", {}).get("revision", "")):
            return dt.datetime.fromisoformat(entry["firstReconciled"])
    return None


async def applied_revision(state: ClusterState) -> str | None:
    async with await Kube.connect(state.kubeconfig) as kube:
        found = await kube.get(KUSTOMIZE, "Kustomization", "skjema", NS)
    return ((found or {}).get("status") or {}).get("lastAppliedRevision")


async def test_three_waves_then_a_failure_in_wave_two_rolls_back(
    fleet: dict[str, ClusterState],
    registry: LocalRegistry,
    settings: ControlSettings,
    server: ApiServer,
    admin: FjordClient,
    admin_token: str,
    gitea: SessionGitea,
) -> None:
    cli_env = {"FJORD_SERVER": server.url, "FJORD_TOKEN": admin_token}
    for name, state in fleet.items():
        async with await Kube.connect(state.kubeconfig) as kube:
            await install_crds(kube)
        boot = fjord_cli(
            "cluster", "bootstrap", "--org", "ttd", "--env", "tt02", "--cluster", name,
            "--kubeconfig", str(state.kubeconfig), env=cli_env,
        )  # fmt: skip
        assert boot.returncode == 0, boot.stderr
        await admin.set_receiver(f"ttd.tt02.{name}", state.flux_receiver_url)
    repo: SeededRepo = gitea.push_app("ttd", "platform-app", name="skjema")
    await admin.create_app(APP, repo.clone_url)
    await admin.set_credential("ttd", gitea.tokens["ttd"])

    # 1. Three waves. While wave 2 runs, the API, the CLI and the UI show it.
    first = await admin.deploy(APP, "tt02")
    during = await wait_until(
        admin, first.id, lambda d: d.rollout is not None and d.rollout.wave == 2
    )
    assert during.rollout is not None
    assert during.rollout.wave == 2, during
    assert during.state == "rolling_out"
    assert [w.clusters for w in during.rollout.waves] == [
        ["ttd.tt02.c1"],
        ["ttd.tt02.c2", "ttd.tt02.c3"],
        ["ttd.tt02.c4"],
    ]
    shown = fjord_cli("rollout", "show", str(first.id), env=cli_env)
    assert shown.returncode == 0, shown.stderr
    assert "wave 2 of 3" in shown.stdout
    async with httpx2.AsyncClient(base_url=server.url, timeout=120) as ui:
        signed_in = await ui.post("/ui/login", data={"token": admin_token})
        assert signed_in.status_code == 303, signed_in.text
        page = (await ui.get("/ui/apps/ttd/skjema")).text
    assert 'data-wave="2"' in page
    assert 'data-wave-state="done"' in page  # wave 1

    v1 = await admin.wait_deployment(first.id, timeout=300)
    assert v1.state == "ready", v1
    assert v1.digest is not None
    assert v1.rollout is not None
    assert [w.state for w in v1.rollout.waves] == ["done", "done", "done"]
    assert sorted(c.revision or "" for c in v1.clusters) == [f"tt02.{n}@{v1.digest}" for n in NAMES]
    # Each wave started only after the previous one was ready and soaked …
    waves = v1.rollout.waves
    for before, after in itertools.pairwise(waves):
        assert before.ready_at is not None
        assert after.started_at is not None
        assert after.started_at >= before.ready_at + dt.timedelta(seconds=SOAK)
    # … and no cluster applied the release before its own wave started (Flux's own record).
    for number, wave in enumerate(waves, start=1):
        assert wave.started_at is not None
        for cluster in wave.clusters:
            name = cluster.rsplit(".", 1)[1]
            applied_at = first_applied(await history(fleet[name]), v1.digest)
            assert applied_at is not None, (name, await history(fleet[name]))
            assert applied_at >= wave.started_at.replace(microsecond=0), (number, name)

    # 2. c3 can schedule nothing new; a release with a changed Pod template fails there.
    async with await Kube.connect(fleet["c3"].kubeconfig) as kube:
        for node in await kube.items("v1", "Node"):
            await kube.patch(
                "v1", "Node", node["metadata"]["name"], {"spec": {"unschedulable": True}}
            )
    await admin.set_config(
        APP, {"common": {"env": {"FLEET_RELEASE": "two"}}}, "second release", expected_version=0
    )
    second = fjord_cli("deploy", APP, "--env", "tt02", "-o", "json", env=cli_env)
    assert second.returncode == 1, second.stderr
    v2 = yaml.safe_load(second.stdout)
    assert v2["digest"] != v1.digest
    assert v2["state"] == "rolled_back"
    assert v2["reason"].startswith("wave 2 of 3: ttd.tt02.c3: ")
    assert "Deployment/ttd-skjema/skjema" in v2["reason"]  # Flux's health-check message
    assert "rolled back ttd.tt02.c1, ttd.tt02.c2, ttd.tt02.c3" in v2["reason"]
    assert [w["state"] for w in v2["rollout"]["waves"]][2] == "pending"

    # The tags of waves 1 and 2 point back at v1; c4's never moved.
    async with RegistryStore(registry.url) as store:
        for name in NAMES:
            assert await store.resolve("ttd/apps/skjema", f"tt02.{name}") == v1.digest, name
    # Flux brings c1 and c2 back to v1 (fjord called their Receivers) …
    for name in ("c1", "c2"):
        async with await Kube.connect(fleet[name].kubeconfig) as kube:
            await kube.wait_for(
                KUSTOMIZE,
                "Kustomization",
                "skjema",
                NS,
                until=lambda o, n=name: (
                    (o or {}).get("status", {}).get("lastAppliedRevision")
                    == f"tt02.{n}@{v1.digest}"
                ),
                timeout=180,
            )
    # … and c4 never received v2: Flux's own history there has no trace of it.
    assert first_applied(await history(fleet["c4"]), v2["digest"]) is None
    assert await applied_revision(fleet["c4"]) == f"tt02.c4@{v1.digest}"
    assert first_applied(await history(fleet["c1"]), v2["digest"]) is not None
