"""An org on Azure Blob Storage through the control plane: Flux Bucket sources end to end.

Org ``digdir`` keeps its releases in its own Azurite container; the control plane writes with
the account key, the cluster reads with the SAS the bootstrap gave it (read + list on that
container only). Deploy, a second deploy, rollback, promotion with approval and undeploy all go
through the real control plane, Flux's Bucket source and kustomize-controller, every pull
started by fjord calling the cluster's Receiver (intervals are 10 minutes). The other org's
container refuses digdir's credential.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.core.exceptions import HttpResponseError
from azure.storage.blob.aio import ContainerClient
from control_support import REPO_ROOT, make_token

from fjord.api import ApiSettings
from fjord.api.client import FjordClient
from fjord.api.server import ApiServer
from fjord.artifact import build_artifact
from fjord.control import ControlSettings, Role
from fjord.control.stores import open_azure_store
from fjord.devcluster.azurite import ACCOUNT_KEY, Azurite
from fjord.devcluster.cluster import ClusterState
from fjord.devcluster.gitea import SeededRepo
from fjord.kube import Kube, is_true
from fjord.spec import PlatformConfig
from fjord.spec.platform import AzureStore, Cluster, Environment, IngressRouting, Org
from fjord.stores.azure import DEFAULT_API_VERSION, AzureBlobStore
from gitea_support import SessionGitea

pytestmark = [pytest.mark.cluster, pytest.mark.flux]

APP = "digdir/skjema"
NS = "digdir-skjema"
SOURCE_API = "source.toolkit.fluxcd.io/v1"
KUSTOMIZE_API = "kustomize.toolkit.fluxcd.io/v1"


def platform(azurite: Azurite) -> PlatformConfig:
    def store(org: str) -> AzureStore:
        return AzureStore(kind="azure", account_url=azurite.blob_endpoint, container=f"t-{org}")

    both = {"tt02": [Cluster(name="local")], "production": [Cluster(name="local")]}
    return PlatformConfig(
        domain="fjord.localhost",
        environments=[Environment(name="tt02"), Environment(name="production")],
        orgs={"digdir": Org(store=store("digdir"), clusters=both), "ttd": Org(store=store("ttd"))},
        routing=IngressRouting(flavour="ingress"),
    )


@pytest.fixture
def settings(tmp_path: Path, azurite: Azurite) -> ControlSettings:
    return ControlSettings(
        data_dir=tmp_path / "data",
        platform=platform(azurite),
        deploy_timeout_seconds=240,
        kustomization_timeout="30s",
        flux_interval="10m",
        azure_keys={azurite.blob_endpoint: ACCOUNT_KEY},
    )


@pytest.fixture
def server(settings: ControlSettings) -> Iterator[ApiServer]:
    with ApiServer(ApiSettings(control=settings, sweep_seconds=1.0)) as running:
        yield running


@pytest.fixture
async def admin(server: ApiServer, settings: ControlSettings) -> AsyncIterator[FjordClient]:
    token = await make_token(settings, "admin", {"*": Role.platform_admin})
    async with FjordClient.remote(server.url, token) as client:
        yield client


@pytest.fixture
def repo(gitea: SessionGitea, tmp_path: Path) -> SeededRepo:
    """The platform sample app, as org digdir's (tagged v1.0.0)."""
    source = tmp_path / "app"
    shutil.copytree(REPO_ROOT / "examples" / "platform-app", source)
    spec = source / "fjord.yaml"
    spec.write_text(spec.read_text().replace("org: ttd\n", "org: digdir\n"))
    return gitea.push_app("digdir", source, name="skjema")


async def bootstrap(kube: Kube, admin: FjordClient, environment: str) -> list[dict[str, Any]]:
    objects = await admin.bootstrap("digdir", environment, "local")
    for obj in objects:
        await kube.apply(obj, field_manager="fjord-bootstrap", force=True)
    return objects


async def install_crds(kube: Kube) -> None:
    for path in sorted((REPO_ROOT / "deploy" / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        await kube.apply(crd, field_manager="test", force=True)
        await kube.wait_for(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            crd["metadata"]["name"],
            until=lambda o: is_true(o, "Established"),
        )


async def variable(kube: Kube, name: str) -> str | None:
    """An environment variable of the app's container, as applied in the cluster."""
    deployment = await kube.get("apps/v1", "Deployment", "skjema", NS)
    assert deployment is not None
    env = deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])
    return next((e.get("value") for e in env if e["name"] == name), None)


def sas_of(objects: list[dict[str, Any]]) -> str:
    secret = next(
        o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == "fjord-azure"
    )
    return base64.b64decode(secret["data"]["sasKey"]).decode()


async def read_with(azurite: Azurite, container: str, sas: str) -> int:
    """Lists ``container`` with ``sas`` and reads one of its blobs: 200, or the HTTP status."""
    url = f"{azurite.blob_endpoint}/{container}{sas}"
    async with ContainerClient.from_container_url(url, api_version=DEFAULT_API_VERSION) as client:
        try:
            names = [b.name async for b in client.list_blobs()]
            await (await client.download_blob(names[0])).readall()
        except HttpResponseError as exc:
            return int(exc.status_code or 0)
    return 200


async def test_azure_org_deploy_rollback_promote_undeploy_through_buckets(
    flux_cluster: ClusterState,
    flux_kube: Kube,
    azurite: Azurite,
    settings: ControlSettings,
    admin: FjordClient,
    server: ApiServer,
    repo: SeededRepo,
    gitea: SessionGitea,
) -> None:
    await install_crds(flux_kube)
    objects = await bootstrap(flux_kube, admin, "tt02")
    await admin.set_receiver("digdir.tt02.local", flux_cluster.flux_receiver_url)
    await admin.create_app(APP, repo.clone_url)
    await admin.set_credential("digdir", gitea.tokens["digdir"])

    # The cluster's sources are Buckets on digdir's container, read with the SAS.
    root = await flux_kube.get(SOURCE_API, "Bucket", "fjord-sync", "flux-system")
    assert root is not None
    assert root["spec"]["bucketName"] == "t-digdir"
    assert root["spec"]["prefix"] == "tree/digdir/sync/tt02/current/"
    assert root["spec"]["secretRef"] == {"name": "fjord-azure"}

    # 1. deploy v1.0.0: Flux's Bucket reads the tree, applies it and reports the revision,
    # which fjord maps back to the release digest.
    first = await admin.wait_deployment((await admin.deploy(APP, "tt02", ref="v1.0.0")).id)
    assert first.state == "ready", first
    async with open_azure_store(settings, "digdir") as store:
        assert isinstance(store, AzureBlobStore)
        tree = await store.tree_state("digdir/apps/skjema", "tt02")
    assert tree is not None
    assert tree.digest == first.digest
    assert first.clusters[0].revision == tree.revision
    source = await flux_kube.get(SOURCE_API, "Bucket", "digdir-skjema", "flux-system")
    assert source is not None
    assert source["status"]["artifact"]["revision"] == tree.revision
    kustomization = await flux_kube.get(KUSTOMIZE_API, "Kustomization", "skjema", NS)
    assert kustomization is not None
    assert kustomization["spec"]["sourceRef"]["kind"] == "Bucket"
    assert kustomization["status"]["lastAppliedRevision"] == tree.revision
    assert await variable(flux_kube, "FEATURE") is None
    assert await variable(flux_kube, "ASPNETCORE_ENVIRONMENT") == "Staging"
    cell = (await admin.app_status(APP)).environments[0].clusters[0]
    assert (cell.ready, cell.digest) == (True, first.digest)

    # 2. a second release (a variable set through dynamic config) replaces the tree.
    await admin.set_config(
        APP, {"environments": {"tt02": {"env": {"FEATURE": "on"}}}}, "feature", expected_version=0
    )
    second = await admin.wait_deployment((await admin.deploy(APP, "tt02", ref="v1.0.0")).id)
    assert second.state == "ready", second
    assert second.digest != first.digest
    assert second.clusters[0].revision != first.clusters[0].revision
    assert await variable(flux_kube, "FEATURE") == "on"

    # 3. roll back to the first release.
    back = await admin.rollback(APP, "tt02", to=first.digest)
    back = await admin.wait_deployment(back.id, timeout=240)
    assert back.state == "ready", back
    assert back.digest == first.digest
    assert await variable(flux_kube, "FEATURE") is None

    # 4. promote to production: waits for the approval, then for a production cluster.
    promo = await admin.promote(APP, "production")
    promo = await admin.wait_deployment(promo.id, until=("awaiting_approval",))
    # Production needs four eyes: another app-admin approves what the admin asked for.
    lead = await make_token(settings, "lead", {"digdir": Role.app_admin})
    async with FjordClient.remote(server.url, lead) as approver:
        approved = await approver.approve(promo.id)
    approved = await admin.wait_deployment(approved.id, until=("progressing", "ready"))
    assert approved.state == "progressing"

    # 5. undeploy from tt02: the sync root drops the app, Flux prunes its namespace.
    gone = await admin.wait_deployment((await admin.undeploy(APP, "tt02")).id, timeout=240)
    assert gone.state == "ready", gone
    await flux_kube.wait_for("v1", "Namespace", NS, until=lambda o: o is None, timeout=120)
    assert await flux_kube.get(SOURCE_API, "Bucket", "digdir-skjema", "flux-system") is None

    # 6. the same cluster, bootstrapped as production's, runs the promoted release.
    await bootstrap(flux_kube, admin, "production")
    await admin.set_receiver("digdir.production.local", flux_cluster.flux_receiver_url)
    await flux_kube.patch(
        SOURCE_API,
        "Bucket",
        "fjord-sync",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "bootstrap"}}},
        "flux-system",
    )
    done = await admin.wait_deployment(approved.id, timeout=240)
    assert done.state == "ready", done
    assert done.digest == first.digest
    async with open_azure_store(settings, "digdir") as store:
        assert isinstance(store, AzureBlobStore)
        production = await store.tree_state("digdir/apps/skjema", "production")
    assert production is not None
    assert production.digest == first.digest
    assert done.clusters[0].revision == production.revision
    assert await variable(flux_kube, "ASPNETCORE_ENVIRONMENT") == "Production"

    # One org's read credential cannot read the other's container; fjord wrote both.
    async with open_azure_store(settings, "ttd") as other:
        artifact = build_artifact({"tt02/x.yaml": b"x: 1\n"}, source="s", revision="r")
        await other.push("ttd/apps/x", artifact, tag="tt02")
    sas = sas_of(objects)
    assert await read_with(azurite, "t-digdir", sas) == 200
    assert await read_with(azurite, "t-ttd", sas) == 403
