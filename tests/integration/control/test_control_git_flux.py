"""From a push in Gitea to a Ready app in a real cluster with Flux, and back to Gitea.

The app has the branch rule ``main → tt02``: pushing a commit and a tag makes Gitea deliver
both; the branch push deploys the pushed commit to tt02 (the Receiver makes Flux pull at once),
the tag builds a release of the same commit (the same digest), and fjord reports the deployment
as a commit status in Gitea (success, linking to the deployment). Then deploys by tag, branch,
commit and release number all land on the cluster.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from control_support import fjord_cli, make_token
from git_support import Client
from test_control_flux import install_crds

from fjord.api import ApiSettings
from fjord.api.server import ApiServer
from fjord.control import ControlSettings, Role
from fjord.devcluster.cluster import ClusterState
from fjord.devcluster.registry import LocalRegistry
from fjord.kube import Kube
from fjord.spec import PlatformConfig
from fjord.spec.platform import Cluster, Environment, IngressRouting, OciStore, Org
from gitea_support import EXAMPLES, SessionGitea

pytestmark = [pytest.mark.cluster, pytest.mark.flux]

APP = "ttd/skjema"


def platform(registry: LocalRegistry) -> PlatformConfig:
    return PlatformConfig(
        domain="fjord.localhost",
        environments=[Environment(name="tt02"), Environment(name="production")],
        orgs={
            "ttd": Org(
                store=OciStore(kind="oci", registry=registry.host, plain_http=True),
                clusters={"tt02": [Cluster(name="local")]},
            )
        },
        routing=IngressRouting(flavour="ingress"),
    )


@pytest.fixture
def settings(tmp_path: Path, registry: LocalRegistry, gitea: SessionGitea) -> ControlSettings:
    return ControlSettings(
        data_dir=tmp_path / "data",
        platform=platform(registry),
        deploy_timeout_seconds=240,
        kustomization_timeout="30s",
        flux_interval="10m",
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


async def _until(check: Any, what: str, timeout: float = 240.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.5)


async def test_push_to_ready_and_commit_status(
    flux_cluster: ClusterState,
    flux_kube: Kube,
    gitea: SessionGitea,
    server: ApiServer,
    admin: Client,
    tmp_path: Path,
) -> None:
    env = {"FJORD_SERVER": server.url, "FJORD_TOKEN": admin.token}
    await install_crds(flux_kube)
    boot = fjord_cli(
        "cluster", "bootstrap", "--org", "ttd", "--env", "tt02", "--cluster", "local",
        "--kubeconfig", str(flux_cluster.kubeconfig), env=env,
    )  # fmt: skip
    assert boot.returncode == 0, boot.stderr
    await admin.call(
        "PUT", "/api/clusters/ttd.tt02.local/receiver", {"url": flux_cluster.flux_receiver_url}
    )
    repo = gitea.push_app("ttd", "platform-app", name="skjema")
    await admin.call("PUT", "/api/orgs/ttd/credential", {"token": gitea.tokens["ttd"]}, 204)
    created = fjord_cli(
        "app", "create", APP, "--repo", repo.clone_url, "--deploy-branch", "main",
        "--deploy-env", "tt02", "-o", "json", env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["deploy_environment"] == "tt02"

    # Push a commit and a tag: Gitea's deliveries deploy main's head and build the tag.
    source = tmp_path / "next"
    shutil.copytree(EXAMPLES / "platform-app", source)
    (source / "CHANGELOG.md").write_text("1.1.0: a change\n")
    commit = gitea.push(repo, source, message="a change", tag="v1.1.0")

    async def deployed() -> Any:
        rows = await admin.call("GET", f"/api/apps/{APP}/history")
        done = [r for r in rows if r["commit"] == commit and r["state"] in ("ready", "failed")]
        return done[0] if done else None

    deployment = await _until(deployed, "the webhook's deployment of the pushed commit")
    assert deployment["state"] == "ready", deployment
    assert deployment["requested_by"] == "gitea-webhook"
    assert deployment["ref"] == "main"  # pinned to the pushed commit, named by its branch
    kustomization = await flux_kube.get(
        "kustomize.toolkit.fluxcd.io/v1", "Kustomization", "skjema", "ttd-skjema"
    )
    assert kustomization is not None
    assert kustomization["status"]["lastAppliedRevision"] == f"tt02@{deployment['digest']}"

    # The tag's build (a queued job of the webhook) is the same commit and config: the same
    # release as the one deployed.
    audit_has_tag = await _until(lambda: _audit_release(admin, "v1.1.0"), "the tag's release build")
    assert audit_has_tag["detail"]["commit"] == commit
    assert audit_has_tag["actor"] == "gitea-webhook"

    # fjord reports the deployment and the tag's build in Gitea: success, with links.
    async def status() -> Any:
        found = gitea.server.api("GET", f"/repos/{repo.repository}/commits/{commit}/status")
        states = {s["context"]: s for s in found.get("statuses") or []}
        cells = [states.get("fjord/deploy/tt02"), states.get("fjord/release")]
        return cells if all(c and c["status"] == "success" for c in cells) else None

    cell, built = await _until(status, "the success commit statuses")
    assert cell["target_url"] == (f"{server.url}/ui/apps/ttd/skjema#deployment-{deployment['id']}")
    assert "tt02" in cell["description"]
    assert "v1.1.0" in built["description"]
    # One release of that commit: the tag's build gave the digest the branch deploy recorded.
    releases = await admin.call("GET", f"/api/apps/{APP}/releases")
    of_commit = [r for r in releases if r["commit"] == commit]
    assert [(r["id"], r["digest"]) for r in of_commit] == [
        (deployment["release_id"], deployment["digest"])
    ]

    # Deploy by tag, branch, commit and release number.
    first = fjord_cli("deploy", APP, "--env", "tt02", "--ref", "v1.0.0", "-o", "json", env=env)
    assert first.returncode == 0, first.stderr
    by_tag = json.loads(first.stdout)
    assert (by_tag["state"], by_tag["commit"], by_tag["ref"]) == ("ready", repo.commit, "v1.0.0")
    by_branch = fjord_cli("deploy", APP, "--env", "tt02", "--ref", "main", "-o", "json", env=env)
    assert by_branch.returncode == 0, by_branch.stderr
    assert json.loads(by_branch.stdout)["digest"] == deployment["digest"]
    by_commit = fjord_cli(
        "deploy", APP, "--env", "tt02", "--ref", repo.commit[:12], "-o", "json", env=env
    )
    assert by_commit.returncode == 0, by_commit.stderr
    assert json.loads(by_commit.stdout)["digest"] == by_tag["digest"]
    number = str(deployment["release_id"])
    by_release = fjord_cli(
        "deploy", APP, "--env", "tt02", "--release", number, "-o", "json", env=env
    )
    assert by_release.returncode == 0, by_release.stderr
    assert json.loads(by_release.stdout)["digest"] == deployment["digest"]
    history = fjord_cli("history", APP, "--env", "tt02", env={**env, "COLUMNS": "250"})
    assert history.returncode == 0, history.stderr
    assert commit[:12] in history.stdout
    assert "v1.0.0" in history.stdout


async def _audit_release(admin: Client, ref: str) -> Any:
    rows = await admin.call("GET", "/api/audit")
    return next(
        (e for e in rows if e["action"] == "release.create" and e["detail"]["ref"] == ref), None
    )
