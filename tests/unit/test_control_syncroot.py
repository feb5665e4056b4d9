"""What clusters get: sync-root objects per app, and the one-time bootstrap manifests."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from test_control_support import ADMIN, CLUSTER, opened, settings, with_app

from fjord.control import ControlSettings, RegistryCredentials, clusters
from fjord.control.bootstrap import BootstrapInput, bootstrap_objects
from fjord.control.errors import InvalidError
from fjord.control.models import Cluster
from fjord.control.receivers import webhook_path
from fjord.control.syncroot import sync_root_artifact, sync_root_files
from fjord.spec import PlatformConfig
from fjord.spec.platform import AzureStore, OciStore


def oci_settings(tmp_path: Path, *, auth: bool = False) -> ControlSettings:
    base = settings(tmp_path)
    org = base.platform.orgs["ttd"].model_copy(
        update={"store": OciStore(kind="oci", registry="registry.test:5000", plain_http=True)}
    )
    platform = base.platform.model_copy(update={"orgs": {"ttd": org}})
    creds = {"registry.test:5000": RegistryCredentials("puller", "s3cret")} if auth else {}
    return ControlSettings(
        data_dir=base.data_dir,
        platform=platform,
        public_url="http://fjord.test:8650",
        registry_credentials=creds,
    )


def by_kind(documents: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(d["kind"]): d for d in documents}


def test_each_app_gets_namespace_confined_deployer_source_and_kustomization(tmp_path: Path) -> None:
    config = oci_settings(tmp_path)
    files = sync_root_files(config, "ttd", "tt02", ["skjema", "annet"])
    assert sorted(files) == ["alert.yaml", "apps/annet.yaml", "apps/skjema.yaml"]
    objects = by_kind(list(yaml.safe_load_all(files["apps/skjema.yaml"])))
    assert objects["Namespace"]["metadata"]["name"] == "ttd-skjema"  # type: ignore[index]
    binding = objects["RoleBinding"]
    assert binding["metadata"]["namespace"] == "ttd-skjema"  # type: ignore[index]
    assert binding["roleRef"]["name"] == "admin"  # type: ignore[index]
    assert binding["subjects"] == [  # type: ignore[comparison-overlap]
        {"kind": "ServiceAccount", "name": "fjord-deployer", "namespace": "ttd-skjema"}
    ]
    source = objects["OCIRepository"]["spec"]
    assert source == {  # type: ignore[comparison-overlap]
        "url": "oci://registry.test:5000/ttd/apps/skjema",
        "ref": {"tag": "tt02"},
        "interval": "10m",
        "insecure": True,
        "verify": {"provider": "cosign", "secretRef": {"name": "fjord-cosign"}},
    }
    kustomization = objects["Kustomization"]
    assert kustomization["metadata"]["namespace"] == "ttd-skjema"  # type: ignore[index]
    spec = kustomization["spec"]
    assert spec["path"] == "./tt02"  # type: ignore[index]
    assert spec["prune"] is True  # type: ignore[index]
    assert spec["wait"] is True  # type: ignore[index]
    assert spec["serviceAccountName"] == "fjord-deployer"  # type: ignore[index]
    assert spec["sourceRef"] == {  # type: ignore[index]
        "kind": "OCIRepository",
        "name": "ttd-skjema",
        "namespace": "flux-system",
    }
    assert "Secret" not in files["apps/skjema.yaml"].decode()
    alert = yaml.safe_load(files["alert.yaml"])
    namespaces = {s.get("namespace") for s in alert["spec"]["eventSources"]}
    assert {"ttd-skjema", "ttd-annet"} <= namespaces
    # Same list, same bytes; order does not matter.
    one = sync_root_artifact(config, "ttd", "tt02", ["skjema", "annet"])
    two = sync_root_artifact(config, "ttd", "tt02", ["annet", "skjema", "annet"])
    assert one.digest == two.digest


def test_bootstrap_has_secrets_root_sync_provider_alert_and_receiver(tmp_path: Path) -> None:
    config = oci_settings(tmp_path, auth=True)
    objects = bootstrap_objects(
        config,
        BootstrapInput("ttd", "tt02", CLUSTER, token="t0ken", public_key_pem=b"PEM"),
    )
    named = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    hmac_secret = named[("Secret", "fjord-webhook")]
    assert base64.b64decode(hmac_secret["data"]["token"]) == b"t0ken"
    assert base64.b64decode(named[("Secret", "fjord-cosign")]["data"]["cosign.pub"]) == b"PEM"
    registry = named[("Secret", "fjord-registry")]
    assert registry["type"] == "kubernetes.io/dockerconfigjson"
    root = named[("OCIRepository", "fjord-sync")]["spec"]
    assert root["url"] == "oci://registry.test:5000/ttd/sync/tt02"
    assert root["ref"] == {"tag": "current"}
    assert root["secretRef"] == {"name": "fjord-registry"}
    assert named[("Kustomization", "fjord-sync")]["spec"]["prune"] is True
    provider = named[("Provider", "fjord")]["spec"]
    assert provider == {
        "type": "generic-hmac",
        "address": f"http://fjord.test:8650/api/flux/events/{CLUSTER}",
        "secretRef": {"name": "fjord-webhook"},
    }
    assert named[("Alert", "fjord")]["spec"]["eventSeverity"] == "info"
    receiver = named[("Receiver", "fjord")]["spec"]
    assert receiver["type"] == "generic-hmac"
    assert receiver["secretRef"] == {"name": "fjord-webhook"}
    assert webhook_path("t0ken").startswith("/hook/")


async def test_clusters_trust_the_legacy_key_only_during_the_migration_window(
    tmp_path: Path,
) -> None:
    window = settings(tmp_path / "window")
    closed = settings(tmp_path / "closed", legacy_signatures=False)
    for config, expected in ((window, {"cosign.pub", "legacy.pub"}), (closed, {"cosign.pub"})):
        async with opened(config) as plane:
            objects = await clusters.bootstrap(plane, ADMIN, "ttd", "tt02", "tt02-1")
            secret = next(o for o in objects if o["metadata"]["name"] == "fjord-cosign")
            assert set(secret["data"]) == expected
            keys = {k: base64.b64decode(v) for k, v in secret["data"].items()}
            assert keys["cosign.pub"] == plane.public_key_pem
            # Never one key for both formats: Flux does not check a legacy `.sig`'s digest.
            assert keys.get("legacy.pub") != plane.public_key_pem
            assert (plane.signer.legacy_key is not None) == ("legacy.pub" in expected)


def test_root_and_app_sources_verify_and_pull_alike(tmp_path: Path) -> None:
    config = oci_settings(tmp_path, auth=True)
    given = BootstrapInput("ttd", "tt02", CLUSTER, token="t", public_key_pem=b"PEM")
    root = next(o for o in bootstrap_objects(config, given) if o["kind"] == "OCIRepository")
    files = sync_root_files(config, "ttd", "tt02", ["skjema"])
    app = by_kind(list(yaml.safe_load_all(files["apps/skjema.yaml"])))["OCIRepository"]
    shared = ("verify", "secretRef", "insecure", "interval")
    assert {k: root["spec"][k] for k in shared} == {k: app["spec"][k] for k in shared}  # type: ignore[index]
    assert root["metadata"]["namespace"] == app["metadata"]["namespace"] == "flux-system"  # type: ignore[index]


async def test_each_cluster_gets_its_own_token_encrypted_at_rest(tmp_path: Path) -> None:
    async with opened(settings(tmp_path)) as plane:
        tokens = await with_app(plane, tmp_path)
        assert len(set(tokens.values())) == 2
        async with plane.db.session() as session:
            stored = await session.get(Cluster, CLUSTER)
        assert stored is not None
        assert stored.token_cipher is not None
        assert tokens[CLUSTER] not in stored.token_cipher
        # Bootstrapping again rotates the token.
        await clusters.bootstrap(plane, ADMIN, "ttd", "tt02", "tt02-1")
        assert await clusters.cluster_token(plane, ADMIN, CLUSTER) != tokens[CLUSTER]


ACCOUNT_URL = "http://127.0.0.1:10000/devstoreaccount1"
# Azurite's published development key (not a secret).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def azure_settings(tmp_path: Path) -> ControlSettings:
    base = settings(tmp_path)
    org = base.platform.orgs["digdir"].model_copy(
        update={"store": AzureStore(kind="azure", account_url=ACCOUNT_URL, container="c-digdir")}
    )
    platform = base.platform.model_copy(update={"orgs": {"digdir": org}})
    return ControlSettings(
        data_dir=base.data_dir,
        platform=platform,
        public_url="http://fjord.test:8650",
        azure_keys={ACCOUNT_URL: ACCOUNT_KEY},
    )


def test_an_azure_org_is_read_through_buckets_with_a_read_only_sas(tmp_path: Path) -> None:
    config = azure_settings(tmp_path)
    objects = bootstrap_objects(
        config, BootstrapInput("digdir", "tt02", CLUSTER, token="t", public_key_pem=b"PEM")
    )
    named = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    assert ("OCIRepository", "fjord-sync") not in named
    assert ("Secret", "fjord-registry") not in named
    root = named[("Bucket", "fjord-sync")]["spec"]
    assert root["provider"] == "azure"
    assert (root["endpoint"], root["bucketName"]) == (ACCOUNT_URL, "c-digdir")
    assert root["prefix"] == "tree/digdir/sync/tt02/current/"
    assert root["secretRef"] == {"name": "fjord-azure"}
    sync = named[("Kustomization", "fjord-sync")]["spec"]
    assert sync["sourceRef"] == {"kind": "Bucket", "name": "fjord-sync"}
    assert sync["path"] == "./tree/digdir/sync/tt02/current"
    receiver = named[("Receiver", "fjord")]["spec"]
    assert {r["kind"] for r in receiver["resources"]} == {"Bucket"}
    # The SAS: read + list, on this container only; never the account key.
    sas = base64.b64decode(named[("Secret", "fjord-azure")]["data"]["sasKey"]).decode()
    query = dict(item.split("=", 1) for item in sas.removeprefix("?").split("&"))
    assert (query["sp"], query["sr"]) == ("rl", "c")
    assert ACCOUNT_KEY not in sas

    files = sync_root_files(config, "digdir", "tt02", ["varsel"])
    app = by_kind(list(yaml.safe_load_all(files["apps/varsel.yaml"])))
    assert "OCIRepository" not in app
    assert app["Bucket"]["spec"]["prefix"] == "tree/digdir/apps/varsel/tt02/"  # type: ignore[index]
    assert app["Kustomization"]["spec"]["sourceRef"]["kind"] == "Bucket"  # type: ignore[index]
    assert app["Kustomization"]["spec"]["path"] == "./tree/digdir/apps/varsel/tt02"  # type: ignore[index]
    # The Azure store writes the tree of tag ``current`` from the artifact's ``current/``.
    artifact = sync_root_artifact(config, "digdir", "tt02", ["varsel"])
    assert sorted(artifact.files()) == ["current/alert.yaml", "current/apps/varsel.yaml"]


def test_an_azure_org_without_an_account_key_is_refused_by_name(tmp_path: Path) -> None:
    config = azure_settings(tmp_path)
    keyless = ControlSettings(data_dir=config.data_dir, platform=config.platform)
    given = BootstrapInput("digdir", "tt02", CLUSTER, token="t", public_key_pem=b"PEM")
    with pytest.raises(InvalidError) as refused:
        bootstrap_objects(keyless, given)
    assert ACCOUNT_URL in str(refused.value)
    assert "FJORD_AZURE_KEYS" in (refused.value.hint or "")


def test_two_orgs_may_not_share_a_container(tmp_path: Path) -> None:
    config = azure_settings(tmp_path)
    digdir = config.platform.orgs["digdir"]
    with pytest.raises(ValidationError) as refused:
        PlatformConfig.model_validate(
            config.platform.model_dump() | {"orgs": {"digdir": digdir, "ttd": digdir}}
        )
    assert "'c-digdir' is already org 'digdir'" in str(refused.value)


def test_azure_keys_from_the_environment() -> None:
    parsed = ControlSettings.from_env({"FJORD_AZURE_KEYS": f"{ACCOUNT_URL}/={ACCOUNT_KEY}"})
    assert parsed.azure_keys == {ACCOUNT_URL: ACCOUNT_KEY}
    with pytest.raises(ValueError, match="FJORD_AZURE_KEYS: 'http://a' has no key"):
        ControlSettings.from_env({"FJORD_AZURE_KEYS": "http://a"})
