"""After `fjord dev up`: the sample apps run in their clusters with their infrastructure.

Deploy → Flux pulled from the org's store (ttd: its registry; digdir: its Azurite container,
through a Bucket) → Deployment Available on kwok nodes →
MaskinportenClient and AppCredentials Ready → Secrets present and usable → the control plane
shows Ready with the release revision for each cluster.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx2
import psycopg
import pytest
import redis
from e2e_support import Platform, status_of

from fjord.api.client import FjordClient
from fjord.kube import is_true

pytestmark = [pytest.mark.cluster, pytest.mark.flux, pytest.mark.e2e]

SAMPLES = {
    # app → (cluster, namespace, Secrets the operators must write)
    "ttd/skjema": ("ttd.tt02.tt02-1", "ttd-skjema", ["skjema-maskinporten", "skjema-pg-forms"]),
    "digdir/varsel": (
        "digdir.tt02.tt02-1",
        "digdir-varsel",
        ["varsel-maskinporten", "varsel-redis"],
    ),
}


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


@pytest.mark.parametrize("app", sorted(SAMPLES))
async def test_sample_app_runs_with_its_infrastructure(
    platform: Platform, admin: FjordClient, app: str
) -> None:
    cluster_id, namespace, secret_names = SAMPLES[app]
    name = app.split("/")[1]

    status = await status_of(admin, app)
    tt02 = next(e for e in status["environments"] if e["environment"] == "tt02")
    deployment = tt02["deployment"]
    assert deployment["state"] == "ready"
    # Built from the app's repository in the platform's Gitea, at its tag.
    gitea_url = platform.info["gitea_url"]
    assert deployment["ref"] == "v1.0.0"
    assert deployment["commit_url"] == f"{gitea_url}/{app}/commit/{deployment['commit']}"
    cell = next(c for c in tt02["clusters"] if c["cluster"] == cluster_id)
    assert cell["ready"] is True
    org = app.split("/")[0]
    container = platform.info["azure_orgs"].get(org)  # digdir: releases in Azurite

    async with platform.kube(cluster_id) as kube:
        # Sources live in flux-system as "{org}-{app}", next to the cosign key.
        kind = "Bucket" if container else "OCIRepository"
        source = await kube.get("source.toolkit.fluxcd.io/v1", kind, f"{org}-{name}", "flux-system")
        assert source is not None
        if container:
            # The Bucket reads the tt02 tree of the org's own container; fjord mapped the
            # revision it reported back to the release's digest.
            assert source["spec"]["bucketName"] == container
            assert source["spec"]["prefix"] == f"tree/{org}/apps/{name}/tt02/"
            assert cell["revision"] == source["status"]["artifact"]["revision"]
            assert cell["digest"] == deployment["digest"]
        else:
            assert cell["revision"] == f"tt02@{deployment['digest']}"
            registry = platform.info["registries"][org]
            assert source["spec"]["url"].startswith(f"oci://{registry}/")
            assert is_true(source, "SourceVerified")  # fjord's signature, checked by Flux

        workload = await kube.get("apps/v1", "Deployment", name, namespace)
        assert is_true(workload, "Available")
        pods = await kube.items("v1", "Pod", namespace)
        assert pods
        assert all(p["status"]["phase"] == "Running" for p in pods)
        assert all(p["spec"]["nodeName"].endswith("-node-0") for p in pods)

        client = await kube.get("fjord.dev/v1alpha1", "MaskinportenClient", name, namespace)
        creds = await kube.get("fjord.dev/v1alpha1", "AppCredentials", name, namespace)
        assert is_true(client, "Ready")
        assert is_true(creds, "Ready")
        secrets = {}
        for secret_name in secret_names:
            secret = await kube.get("v1", "Secret", secret_name, namespace)
            assert secret is not None, secret_name
            secrets[secret_name] = secret_data(secret)

    # The Maskinporten client exists in the emulator with the app's scopes and the Secret's key.
    mp = secrets[f"{name}-maskinporten"]
    dump = httpx2.get(f"{platform.info['emulator_url']}test/dump", timeout=10).json()
    registered = next(c for c in dump["clients"] if c["client_id"] == mp["MASKINPORTEN_CLIENT_ID"])
    assert set(mp["MASKINPORTEN_SCOPES"].split()) == set(registered["scopes"])
    assert mp["MASKINPORTEN_KID"] in {k["kid"] for k in registered["keys"]}

    # The database and cache credentials work, exactly as delivered.
    if f"{name}-pg-forms" in secrets:
        pg = secrets[f"{name}-pg-forms"]
        with psycopg.connect(pg["url"]) as conn:
            # The login role acts as the database owner role, so objects outlive rotations.
            assert conn.execute("select session_user").fetchone() == (pg["user"],)
            conn.execute("create table if not exists e2e (id int)")
    if f"{name}-redis" in secrets:
        rd = secrets[f"{name}-redis"]
        cache = redis.Redis(
            host=rd["host"], port=int(rd["port"]), username=rd["username"], password=rd["password"]
        )
        prefix = rd["keyPrefix"]
        assert cache.set(f"{prefix}probe", "1")
        with pytest.raises(redis.exceptions.NoPermissionError):
            cache.set("someone-else:probe", "1")


def test_dev_up_says_how_to_sign_in_to_gitea(platform: Platform) -> None:
    """The demo's service owner can sign in to Gitea with what `fjord dev up` printed, sees
    both orgs and may push to the sample apps' repositories."""
    url, login = platform.info["gitea_url"], platform.info["gitea_login"]
    assert any(url in h and login["password"] in h for h in platform.info["hints"])
    auth = (login["user"], login["password"])
    orgs = httpx2.get(f"{url}/api/v1/user/orgs", auth=auth, timeout=30)
    assert orgs.status_code == 200, orgs.text
    assert sorted(o["username"] for o in orgs.json()) == ["digdir", "ttd"]
    for name, clone in platform.info["repositories"].items():
        assert any(f"git clone {clone}" in h for h in platform.info["hints"])
        repo = httpx2.get(f"{url}/api/v1/repos/{name}", auth=auth, timeout=30)
        assert repo.status_code == 200, repo.text
        assert repo.json()["permissions"]["push"] is True
