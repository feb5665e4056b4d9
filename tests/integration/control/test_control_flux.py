"""The control plane end to end on a real cluster with Flux, a real registry and a real server.

One app's life: bootstrap the cluster, deploy (Flux pulls, applies, reports back over the
generic-hmac Provider), a broken release fails with Flux's own message, roll back, promote to
production with an app-admin's approval, undeploy (Flux prunes), then the same cluster
bootstrapped as the production cluster runs the promoted digest. The Flux intervals are 10
minutes, so every pull here was started by fjord calling the cluster's Receiver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml
from control_support import REPO_ROOT, fjord_cli, make_token

from fjord.api import ApiSettings
from fjord.api.client import ApiError, FjordClient
from fjord.api.server import ApiServer
from fjord.artifact import VerificationError, load_public_key
from fjord.artifact.provenance import summarize
from fjord.control import ControlSettings, Role
from fjord.devcluster.cluster import ClusterState
from fjord.devcluster.gitea import SeededRepo
from fjord.devcluster.registry import LocalRegistry
from fjord.kube import Kube, is_true
from fjord.spec import PlatformConfig
from fjord.spec.platform import Cluster, Environment, IngressRouting, OciStore, Org
from fjord.stores import RegistryStore, Trust, provenance, verify, verify_legacy
from gitea_support import SessionGitea

pytestmark = [pytest.mark.cluster, pytest.mark.flux]

APP = "ttd/skjema"
NS = "ttd-skjema"


PREFIX = "platform/fjord"


def platform(registry: LocalRegistry) -> PlatformConfig:
    return PlatformConfig(
        domain="fjord.localhost",
        environments=[Environment(name="tt02"), Environment(name="production")],
        orgs={
            "ttd": Org(
                # A prefix, as platform teams sharing one registry use: every repository fjord
                # writes and every URL the clusters pull from is under it.
                store=OciStore(
                    kind="oci",
                    registry=registry.host,
                    plain_http=True,
                    repository_prefix=PREFIX,
                ),
                clusters={"tt02": [Cluster(name="local")], "production": [Cluster(name="local")]},
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
def repo(gitea: SessionGitea) -> SeededRepo:
    """The app's own repository in the session's Gitea (platform-app, tagged v1.0.0)."""
    return gitea.push_app("ttd", "platform-app", name="skjema")


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


@pytest.fixture
async def admin_token(settings: ControlSettings) -> str:
    return await make_token(settings, "admin", {"*": Role.platform_admin})


@pytest.fixture
async def admin(server: ApiServer, admin_token: str) -> AsyncIterator[FjordClient]:
    async with FjordClient.remote(server.url, admin_token) as client:
        yield client


async def test_deploy_fail_rollback_promote_undeploy_on_real_flux(
    flux_cluster: ClusterState,
    flux_kube: Kube,
    registry: LocalRegistry,
    settings: ControlSettings,
    server: ApiServer,
    admin: FjordClient,
    admin_token: str,
    repo: SeededRepo,
    gitea: SessionGitea,
) -> None:
    cli_env = {"FJORD_SERVER": server.url, "FJORD_TOKEN": admin_token}
    await install_crds(flux_kube)

    # Bootstrap with the CLI, applying to the cluster; point fjord at the cluster's Receiver.
    boot = fjord_cli(
        "cluster", "bootstrap", "--org", "ttd", "--env", "tt02", "--cluster", "local",
        "--kubeconfig", str(flux_cluster.kubeconfig), env=cli_env,
    )  # fmt: skip
    assert boot.returncode == 0, boot.stderr
    assert "applied Provider fjord" in boot.stderr
    await admin.set_receiver("ttd.tt02.local", flux_cluster.flux_receiver_url)
    await admin.create_app(APP, repo.clone_url)
    await admin.set_credential("ttd", gitea.tokens["ttd"])

    # 1. deploy: the CLI follows the cluster and exits 0 once Flux reports the digest applied.
    first = fjord_cli("deploy", APP, "--env", "tt02", "-o", "json", env=cli_env)
    assert first.returncode == 0, first.stderr
    v1 = yaml.safe_load(first.stdout)
    assert v1["state"] == "ready"
    assert v1["revision"] == f"sha1:{repo.commit}"  # the default branch's head, pinned
    assert (v1["ref"], v1["commit"]) == ("main", repo.commit)
    assert [c["state"] for c in v1["clusters"]] == ["ready"]
    assert v1["clusters"][0]["revision"] == f"tt02@{v1['digest']}"
    deployment = await flux_kube.get("apps/v1", "Deployment", "skjema", NS)
    assert deployment is not None
    kustomization = await flux_kube.get(
        "kustomize.toolkit.fluxcd.io/v1", "Kustomization", "skjema", NS
    )
    assert kustomization is not None
    assert kustomization["spec"]["serviceAccountName"] == "fjord-deployer"
    assert kustomization["status"]["lastAppliedRevision"] == f"tt02@{v1['digest']}"
    tt02 = (await admin.app_status(APP)).environments[0]
    assert (tt02.clusters[0].ready, tt02.clusters[0].digest) == (True, v1["digest"])

    # 2. a release whose pods can never be scheduled: Flux's health check fails, fjord says so.
    memory = {"requests": {"memory": "1Ti"}, "limits": {"memory": "1Ti"}}
    await admin.set_config(
        APP,
        {"environments": {"tt02": {"resources": memory}}},
        "more memory",
        expected_version=0,
    )
    broken = fjord_cli("deploy", APP, "--env", "tt02", "-o", "json", env=cli_env)
    assert broken.returncode == 1, broken.stderr
    v2 = yaml.safe_load(broken.stdout)
    assert v2["state"] == "failed"
    assert v2["digest"] != v1["digest"]
    assert v2["config_version"] == 1
    assert v2["reason"].startswith("ttd.tt02.local: ")
    assert "Deployment/ttd-skjema/skjema" in v2["reason"]  # Flux's health-check message
    assert "Deployment/ttd-skjema/skjema" in broken.stderr

    # History shows both releases; their diff names the changed manifest and config.
    history = await admin.history(APP)
    assert [h.id for h in history] == [v2["id"], v1["id"]]
    diff = await admin.diff(APP, v1["digest"], v2["digest"])
    assert [f.path for f in diff.files] == ["tt02/skjema.yaml"]
    added = [line for line in diff.files[0].diff.splitlines() if line.startswith("+")]
    assert any(line.strip().endswith("memory: 1Ti") for line in added), added
    assert '+  "environments": {' in diff.config

    # 3. roll back to the last ready release: a recorded deployment, ready on v1's digest.
    back = await admin.rollback(APP, "tt02")
    assert back.kind == "rollback"
    assert back.digest == v1["digest"]
    back = await admin.wait_deployment(back.id, timeout=240)
    assert back.state == "ready", back
    assert back.clusters[0].revision == f"tt02@{v1['digest']}"

    # 4. promote to production: a developer may ask, only an app-admin may approve.
    lead_token = await make_token(settings, "lead", {"ttd": Role.app_admin})
    developer = FjordClient.remote(
        server.url, await make_token(settings, "dev", {"ttd": Role.developer})
    )
    app_admin = FjordClient.remote(server.url, lead_token)
    try:
        promo = await developer.promote(APP, "production")
        assert promo.digest == v1["digest"]  # pinned when the request was accepted
        promo = await developer.wait_deployment(promo.id, until=("awaiting_approval",))
        assert promo.state == "awaiting_approval"
        with pytest.raises(ApiError) as refused:
            await developer.approve(promo.id)
        assert refused.value.status == 403
        approved = await app_admin.approve(promo.id)
        assert approved.state == "queued"  # a worker continues it after the approval step
        assert approved.approved_by == "token:lead"
        approved = await app_admin.wait_deployment(promo.id, until=("progressing", "ready"))
        assert approved.state == "progressing"
        # The audit log names who asked and who approved; a developer may not read it.
        with pytest.raises(ApiError) as refused:
            await developer.audit(org="ttd")
        assert refused.value.status == 403
        trail = fjord_cli(
            "audit", "--org", "ttd", "-o", "json",
            env={"FJORD_SERVER": server.url, "FJORD_TOKEN": lead_token},
        )  # fmt: skip
        assert trail.returncode == 0, trail.stderr
        entries = yaml.safe_load(trail.stdout)
        assert [(e["action"], e["actor"]) for e in entries[:2]] == [
            ("deployment.approve", "token:lead"),
            ("deployment.promote", "token:dev"),
        ]
    finally:
        await developer.aclose()
        await app_admin.aclose()
    async with RegistryStore(registry.url) as store:
        # Same bytes: production's tag points at the digest tt02 runs.
        assert await store.resolve(f"{PREFIX}/ttd/apps/skjema", "production") == v1["digest"]
        assert await store.resolve(f"{PREFIX}/ttd/apps/skjema", "tt02") == v1["digest"]
        sync_root = await store.resolve(f"{PREFIX}/ttd/sync/tt02", "current")
        assert sync_root is not None
        # Both carry a digest-bound bundle by the platform key (and, in the migration window,
        # a legacy `.sig` by the separate legacy key); the release its signed provenance.
        bundle_key = load_public_key((settings.data_dir / "cosign.pub").read_bytes())
        legacy_key = load_public_key((settings.data_dir / "cosign-legacy.pub").read_bytes())
        for repository, digest in (("ttd/apps/skjema", v1["digest"]), ("ttd/sync/tt02", sync_root)):
            verified = await verify(store, f"{PREFIX}/{repository}", digest, Trust([bundle_key]))
            assert verified.format == "bundle"
            legacy = await verify_legacy(store, f"{PREFIX}/{repository}", digest, [legacy_key])
            assert legacy.digest == digest
            with pytest.raises(VerificationError):
                await verify_legacy(store, f"{PREFIX}/{repository}", digest, [bundle_key])
        attested = await provenance(store, f"{PREFIX}/ttd/apps/skjema", v1["digest"], [bundle_key])
        summary = summarize(attested.predicate)
        assert summary.app == "ttd/skjema"
        assert summary.revision == v1["revision"]
        assert summary.dynamic_version == 0
        assert {i.name for i in summary.inputs} == {
            "fjord.yaml",
            "platform-config",
            "dynamic-config-v0",
        }
    source = await flux_kube.get(
        "source.toolkit.fluxcd.io/v1", "OCIRepository", "ttd-skjema", "flux-system"
    )
    assert source is not None
    assert source["spec"]["url"] == f"oci://{registry.host}/{PREFIX}/ttd/apps/skjema"

    # 5. undeploy from tt02: the sync root drops the app and Flux prunes its namespace.
    gone = await admin.undeploy(APP, "tt02")
    gone = await admin.wait_deployment(gone.id, timeout=240)
    assert gone.state == "ready", gone
    await flux_kube.wait_for("v1", "Namespace", NS, until=lambda o: o is None, timeout=120)
    status = await admin.app_status(APP)
    assert status.environments[0].clusters[0].revision is None

    # 6. the same cluster, bootstrapped as production's, runs the promoted digest.
    boot = fjord_cli(
        "cluster", "bootstrap", "--org", "ttd", "--env", "production", "--cluster", "local",
        "--kubeconfig", str(flux_cluster.kubeconfig), env=cli_env,
    )  # fmt: skip
    assert boot.returncode == 0, boot.stderr
    await admin.set_receiver("ttd.production.local", flux_cluster.flux_receiver_url)
    # Nothing changed in the store since approval; ask the new cluster to pull now.
    await flux_kube.patch(
        "source.toolkit.fluxcd.io/v1",
        "OCIRepository",
        "fjord-sync",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "bootstrap"}}},
        "flux-system",
    )
    done = await admin.wait_deployment(approved.id, timeout=240)
    assert done.state == "ready", done
    assert done.clusters[0].revision == f"production@{v1['digest']}"
    prod = await flux_kube.get("apps/v1", "Deployment", "skjema", NS)
    assert prod is not None
    assert (
        prod["spec"]["template"]["spec"]["containers"][0]["image"]
        == "ghcr.io/fjord-demo/skjema:1.3.0"
    )
