"""After `fjord dev up`: promotion needs an app-admin, undeploy cleans up, tenants stay apart.

* promote tt02 → production: the promotion waits for approval (a developer cannot give it, and
  nothing reaches the production clusters meanwhile); after an app-admin's approval both
  production clusters run the digest tt02 runs, and the registry's ``production`` tag is the
  same manifest, byte for byte;
* undeploy: Flux prunes the app's namespace and the operators delete what they made outside the
  cluster (the Maskinporten client, the PostgreSQL login role, the Redis ACL user);
* a tampered artifact under the environment tag, not signed by the platform key, is refused by
  Flux's cosign check and the cluster keeps the good revision; a good release's signatures
  copied onto tampered content are refused by Flux itself — the digest-bound Sigstore bundle
  always, the legacy ``.sig`` once the signature migration window is closed (during the window
  Flux accepts a copied ``.sig`` and only fjord flags the revision);
* org digdir's cluster (releases in its own Azurite container) cannot pull from org ttd's
  registry and holds no registry credentials; its read-only SAS reads no other container;
* Flux events that are unsigned, wrongly signed or signed with another cluster's token are
  refused and change nothing.

Every test registers its own app (a copy of ``examples/platform-app`` with another name), so
the sample apps and other tests' apps are left alone.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest
import yaml
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob.aio import ContainerClient
from e2e_support import REPO_ROOT, Platform, dumped, status_of

from fjord.api.client import ApiError, FjordClient
from fjord.artifact.bundle import referrers_tag
from fjord.artifact.oci import (
    ANNOTATION_CREATED,
    ANNOTATION_REVISION,
    ANNOTATION_SOURCE,
    Artifact,
    build_artifact,
)
from fjord.artifact.signing import signature_tag
from fjord.control.events import sign
from fjord.devcluster.azurite import Azurite
from fjord.devcluster.postgres import LocalPostgres
from fjord.devcluster.redis import LocalRedis
from fjord.kube import Kube, condition, has_artifact, is_true
from fjord.stores import RegistryStore
from fjord.stores.azure import DEFAULT_API_VERSION

pytestmark = [pytest.mark.cluster, pytest.mark.flux, pytest.mark.e2e]

ORG = "ttd"
TT02 = "ttd.tt02.tt02-1"
PRODUCTION = ("ttd.production.prod-1", "ttd.production.prod-2")
OTHER_ORG_CLUSTER = "digdir.tt02.tt02-1"
OCI = "source.toolkit.fluxcd.io/v1"
KUSTOMIZE = "kustomize.toolkit.fluxcd.io/v1"
FLUX_NS = "flux-system"
GOOD_IMAGE = "ghcr.io/fjord-demo/skjema:1.3.0"
EVIL_IMAGE = "ghcr.io/attacker/skjema:evil"


# ---- helpers -------------------------------------------------------------------------------


async def register(
    platform: Platform, admin: FjordClient, tmp_path: Path, name: str, *, redis: bool = False
) -> str:
    """Register ``ttd/{name}``: the platform sample app under another name, in a repository of
    its own in the platform's Gitea."""
    source = tmp_path / name
    shutil.copytree(REPO_ROOT / "examples" / "platform-app", source)
    spec = yaml.safe_load((source / "fjord.yaml").read_text())
    spec["app"] = name
    if redis:
        spec["redis"] = {"keyPrefix": f"{name}:"}
    (source / "fjord.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    app = f"{ORG}/{name}"
    await admin.create_app(app, platform.push_app(app, source))
    return app


async def deploy_ready(
    platform: Platform, client: FjordClient, app: str, environment: str = "tt02"
) -> dict[str, Any]:
    started = await client.deploy(app, environment)
    final = await platform.wait(client, started.id)
    assert final["state"] == "ready", final
    return final


async def make_token(admin: FjordClient, name: str, grants: dict[str, str]) -> str:
    return (await admin.create_token(name, grants)).token


def registry(platform: Platform, org: str) -> RegistryStore:
    """The org's registry with the org's own credentials."""
    info = platform.state.registries[org]
    return RegistryStore(
        f"http://{info['host']}", username=info["username"], password=info["password"]
    )


def cells(status: dict[str, Any], environment: str) -> dict[str, dict[str, Any]]:
    env = next(e for e in status["environments"] if e["environment"] == environment)
    return {c["cluster"]: c for c in env["clusters"]}


def secret_data(secret: dict[str, Any] | None) -> dict[str, str]:
    assert secret is not None
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def emulator_client_ids(platform: Platform) -> set[str]:
    dump = httpx2.get(f"{platform.info['emulator_url']}test/dump", timeout=10).json()
    return {c["client_id"] for c in dump["clients"]}


def pg_roles(platform: Platform) -> set[str]:
    postgres = LocalPostgres.load(platform.root / "postgres")
    assert postgres is not None
    with psycopg.connect(postgres.dsn) as conn:
        return {row[0] for row in conn.execute("select rolname from pg_roles").fetchall()}


def redis_users(platform: Platform) -> set[str]:
    local = LocalRedis.load(platform.root / "redis")
    assert local is not None
    client = local.client()
    try:
        return {u.decode() if isinstance(u, bytes) else str(u) for u in client.acl_users()}
    finally:
        client.close()


def recorded_events(platform: Platform, body: bytes) -> int:
    """How many stored Flux events have this body (fjord keys events by its SHA-256)."""
    database = platform.root / "control" / "fjord.db"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "select count(*) from flux_events where event_hash = ?",
            (hashlib.sha256(body).hexdigest(),),
        ).fetchone()
    return int(row[0])


async def request_reconcile(kube: Kube, kind: str, name: str, namespace: str) -> str:
    """Ask Flux to reconcile now; returns the token that ``lastHandledReconcileAt`` echoes."""
    token = f"e2e-{time.time_ns()}"
    api = OCI if kind == "OCIRepository" else KUSTOMIZE
    await kube.patch(
        api,
        kind,
        name,
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}},
        namespace,
    )
    return token


def handled(token: str, also: Callable[[dict[str, Any]], bool]) -> Callable[[Any], bool]:
    return lambda o: (
        o is not None and o.get("status", {}).get("lastHandledReconcileAt") == token and also(o)
    )


def verification_refused(o: dict[str, Any]) -> bool:
    verified = condition(o, "SourceVerified") or {}
    return verified.get("status") == "False" and verified.get("reason") == "VerificationError"


def ready_with(revision: str) -> Callable[[dict[str, Any]], bool]:
    return lambda o: (
        is_true(o, "Ready")
        and is_true(o, "SourceVerified")
        and o.get("status", {}).get("artifact", {}).get("revision") == revision
    )


async def wait_cell(
    client: FjordClient,
    app: str,
    environment: str,
    cluster_id: str,
    until: Callable[[dict[str, Any]], bool],
    *,
    what: str,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Poll the app's status until the cell of ``cluster_id`` satisfies ``until``."""
    deadline = time.monotonic() + timeout
    while True:
        status = await status_of(client, app)
        cell = cells(status, environment)[cluster_id]
        if until(cell):
            return cell
        assert time.monotonic() < deadline, f"{cluster_id} never became {what}: {cell}"
        await asyncio.sleep(0.5)


# ---- 1. promotion --------------------------------------------------------------------------


async def test_promotion_waits_for_an_app_admin_then_production_runs_the_tt02_digest(
    platform: Platform, admin: FjordClient, tmp_path: Path
) -> None:
    name = "e2e-promo"
    namespace = f"{ORG}-{name}"
    app = await register(platform, admin, tmp_path, name)
    tt02 = await deploy_ready(platform, admin, app)
    digest = tt02["digest"]
    repository = f"{ORG}/apps/{name}"

    developer = await make_token(admin, "e2e-developer", {ORG: "developer"})
    lead = await make_token(admin, "e2e-lead", {ORG: "app-admin"})
    async with platform.api(developer) as dev, platform.api(lead) as app_admin:
        promotion = dumped(await dev.promote(app, "production"))
        assert promotion["kind"] == "promote"
        promotion = await platform.wait(dev, promotion["id"])
        assert promotion["state"] == "awaiting_approval"
        assert promotion["digest"] == digest
        assert promotion["requested_by"] == "token:e2e-developer"

        # A developer may ask, not approve.
        with pytest.raises(ApiError) as refused:
            await dev.approve(promotion["id"])
        assert refused.value.status == 403, refused.value
        waiting = dumped(await admin.get_deployment(promotion["id"]))
        assert waiting["state"] == "awaiting_approval"
        assert waiting["approved_by"] is None

        # Nothing reached production: no tag in the registry, nothing in either cluster.
        async with registry(platform, ORG) as store:
            assert await store.resolve(repository, "production") is None
            assert await store.resolve(repository, "tt02") == digest
        for cluster_id in PRODUCTION:
            async with platform.kube(cluster_id) as kube:
                assert await kube.get("v1", "Namespace", namespace) is None
                assert await kube.get(OCI, "OCIRepository", f"{ORG}-{name}", FLUX_NS) is None
        status = await status_of(admin, app)
        assert all(c["revision"] is None for c in cells(status, "production").values())

        approved = await app_admin.approve(promotion["id"])
        assert approved.approved_by == "token:e2e-lead"
        done = await platform.wait(admin, promotion["id"])
    assert done["state"] == "ready", done
    assert done["digest"] == digest
    per_cluster = {c["cluster"]: (c["state"], c["revision"]) for c in done["clusters"]}
    assert per_cluster == dict.fromkeys(PRODUCTION, ("ready", f"production@{digest}"))

    # The control plane: both production clusters and tt02 run one digest.
    status = await status_of(admin, app)
    production = cells(status, "production")
    assert set(production) == set(PRODUCTION)
    for cell in production.values():
        assert cell["ready"] is True
        assert (cell["digest"], cell["revision"]) == (digest, f"production@{digest}")
    assert cells(status, "tt02")[TT02]["digest"] == digest

    # The clusters themselves: Flux verified and applied that digest in each.
    for cluster_id in PRODUCTION:
        async with platform.kube(cluster_id) as kube:
            kustomization = await kube.get(KUSTOMIZE, "Kustomization", name, namespace)
            assert is_true(kustomization, "Ready")
            assert kustomization is not None
            assert kustomization["status"]["lastAppliedRevision"] == f"production@{digest}"
            source = await kube.get(OCI, "OCIRepository", f"{ORG}-{name}", FLUX_NS)
            assert is_true(source, "SourceVerified")
            workload = await kube.get("apps/v1", "Deployment", name, namespace)
            assert is_true(workload, "Available")
            assert workload is not None
            image = workload["spec"]["template"]["spec"]["containers"][0]["image"]
            assert image == GOOD_IMAGE

    # The registry: production's tag is tt02's manifest, the same bytes.
    async with registry(platform, ORG) as store:
        assert await store.resolve(repository, "production") == digest
        assert await store.resolve(repository, "tt02") == digest
        assert await store.get_manifest(repository, "production") == await store.get_manifest(
            repository, "tt02"
        )


# ---- 2. undeploy ---------------------------------------------------------------------------


async def test_undeploy_prunes_the_app_and_the_operators_delete_its_credentials(
    platform: Platform, admin: FjordClient, tmp_path: Path
) -> None:
    name = "e2e-gone"
    namespace = f"{ORG}-{name}"
    app = await register(platform, admin, tmp_path, name, redis=True)
    await deploy_ready(platform, admin, app)

    async with platform.kube(TT02) as kube:
        for kind in ("MaskinportenClient", "AppCredentials"):
            await kube.wait_for(
                "fjord.dev/v1alpha1",
                kind,
                name,
                namespace,
                until=lambda o: is_true(o, "Ready"),
                timeout=180,
                what="Ready",
            )
        maskinporten = secret_data(
            await kube.get("v1", "Secret", f"{name}-maskinporten", namespace)
        )
        postgresql = secret_data(await kube.get("v1", "Secret", f"{name}-pg-forms", namespace))
        cache = secret_data(await kube.get("v1", "Secret", f"{name}-redis", namespace))
    client_id = maskinporten["MASKINPORTEN_CLIENT_ID"]
    role = postgresql["user"]
    user = cache["username"]
    # What the operators made outside the cluster exists before the undeploy.
    assert client_id in emulator_client_ids(platform)
    assert role in pg_roles(platform)
    assert user in redis_users(platform)

    started = await admin.undeploy(app, "tt02")
    assert started.kind == "undeploy"
    done = await platform.wait(admin, started.id)
    assert done["state"] == "ready", done

    async with platform.kube(TT02) as kube:
        # Flux pruned the app's namespace (and with it the workload and the infra resources);
        # the namespace is gone only once the operators' finalizers let its Secrets go.
        await kube.wait_for(
            "v1", "Namespace", namespace, until=lambda o: o is None, timeout=240, what="gone"
        )
        assert await kube.get("apps/v1", "Deployment", name, namespace) is None
        assert await kube.get(OCI, "OCIRepository", f"{ORG}-{name}", FLUX_NS) is None
    assert client_id not in emulator_client_ids(platform)
    assert role not in pg_roles(platform)
    assert user not in redis_users(platform)

    status = await status_of(admin, app)
    assert cells(status, "tt02")[TT02]["revision"] is None


# ---- 3a. tampered artifacts ----------------------------------------------------------------


def tampered(good: Artifact, name: str) -> Artifact:
    """The good release with another image and one extra object, not signed by anyone."""
    files = {
        path: data.replace(GOOD_IMAGE.encode(), EVIL_IMAGE.encode())
        for path, data in good.files().items()
    }
    assert files != good.files()
    files["tt02/tampered.yaml"] = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "tampered", "namespace": f"{ORG}-{name}"},
            "data": {"by": "attacker"},
        }
    ).encode()
    reserved = {ANNOTATION_CREATED, ANNOTATION_SOURCE, ANNOTATION_REVISION}
    annotations = good.annotations
    return build_artifact(
        files,
        source=annotations[ANNOTATION_SOURCE],
        revision=annotations[ANNOTATION_REVISION],
        annotations={k: v for k, v in annotations.items() if k not in reserved},
    )


async def test_a_tampered_artifact_is_refused_by_flux_and_the_good_revision_keeps_running(
    platform: Platform, admin: FjordClient, tmp_path: Path
) -> None:
    """Unsigned tampered content is refused; the previous good revision keeps running.

    Copied signatures are the next two tests: Flux's key-based check of a legacy ``.sig`` sets
    no ``ClaimVerifier`` (source-controller v1.9.3, cosign v3.0.6), so a copied ``.sig`` passes
    it while the key that made it is trusted; a copied Sigstore bundle never does.
    """
    name = "e2e-seal"
    namespace = f"{ORG}-{name}"
    source_name = f"{ORG}-{name}"
    app = await register(platform, admin, tmp_path, name)
    deployed = await deploy_ready(platform, admin, app)
    good_digest = deployed["digest"]
    good_revision = f"tt02@{good_digest}"
    repository = f"{ORG}/apps/{name}"

    async with registry(platform, ORG) as store, platform.kube(TT02) as kube:
        good = await store.pull(repository, "tt02")
        assert good.digest == good_digest
        forged = tampered(good, name)
        try:
            # Modified content under the environment tag, not signed by the platform key.
            await store.push(repository, forged, tag="tt02")
            assert await store.resolve(repository, "tt02") == forged.digest
            token = await request_reconcile(kube, "OCIRepository", source_name, FLUX_NS)
            refused = await kube.wait_for(
                OCI,
                "OCIRepository",
                source_name,
                FLUX_NS,
                until=handled(token, verification_refused),
                timeout=120,
                what=f"refused by the signature check (tampered {forged.digest})",
            )
            assert refused is not None
            assert (condition(refused, "Ready") or {}).get("status") == "False"
            refusal = str((condition(refused, "SourceVerified") or {}).get("message"))
            assert forged.digest.removeprefix("sha256:") in refusal, refusal
            # The source still serves the good artifact; the app keeps running it unchanged.
            assert refused["status"]["artifact"]["revision"] == good_revision
            token = await request_reconcile(kube, "Kustomization", name, namespace)
            kustomization = await kube.wait_for(
                KUSTOMIZE,
                "Kustomization",
                name,
                namespace,
                until=handled(token, lambda o: is_true(o, "Ready")),
                timeout=120,
                what="reconciled",
            )
            assert kustomization is not None
            assert kustomization["status"]["lastAppliedRevision"] == good_revision
            workload = await kube.get("apps/v1", "Deployment", name, namespace)
            assert workload is not None
            image = workload["spec"]["template"]["spec"]["containers"][0]["image"]
            assert image == GOOD_IMAGE
            assert await kube.get("v1", "ConfigMap", "tampered", namespace) is None
            # Flux told fjord, which shows the refusal for the cluster.
            cell = await wait_cell(
                admin, app, "tt02", TT02, lambda c: c["ready"] is False, what="not ready"
            )
            assert "verif" in str(cell["message"]).lower(), cell
        finally:
            await store.tag(repository, good_digest, "tt02")

        # Restored: the source verifies and serves the good release again.
        assert await store.resolve(repository, "tt02") == good_digest
        token = await request_reconcile(kube, "OCIRepository", source_name, FLUX_NS)
        restored = await kube.wait_for(
            OCI,
            "OCIRepository",
            source_name,
            FLUX_NS,
            until=handled(token, ready_with(good_revision)),
            timeout=120,
            what=f"Ready at {good_revision}",
        )
        assert restored is not None
    # fjord keeps showing the refusal: source-controller reports recovery only from fetch and
    # storage failures, not from a verification failure, so no event says the tag is good again
    # (the next deployment of the app clears it).


async def test_a_copied_signature_gets_past_flux_but_fjord_flags_the_revision(
    platform: Platform, admin: FjordClient, tmp_path: Path
) -> None:
    """The attack Flux lets through during the signature migration window is caught by fjord.

    Someone with push access to the registry copies a good release's ``.sig`` (signed with the
    legacy key, which clusters trust only during the window) to a tampered digest and moves the
    tag; no bundle is copied, so Flux falls back to the legacy layout. Flux verifies and applies
    it; every event it sends names a digest fjord never released, so the cluster shows not ready
    (``fjord/UnknownRevision``) with what to do, and the audit log records it.
    """
    name = "e2e-sigcopy"
    namespace = f"{ORG}-{name}"
    source_name = f"{ORG}-{name}"
    app = await register(platform, admin, tmp_path, name)
    deployed = await deploy_ready(platform, admin, app)
    good_digest = deployed["digest"]
    repository = f"{ORG}/apps/{name}"

    async with registry(platform, ORG) as store, platform.kube(TT02) as kube:
        good = await store.pull(repository, "tt02")
        forged = tampered(good, name)
        forged_revision = f"tt02@{forged.digest}"
        try:
            await store.push(repository, forged)
            good_signature = await store.resolve(repository, signature_tag(good_digest))
            assert good_signature is not None
            await store.tag(repository, good_signature, signature_tag(forged.digest))
            await store.tag(repository, forged.digest, "tt02")
            await request_reconcile(kube, "OCIRepository", source_name, FLUX_NS)
            await request_reconcile(kube, "Kustomization", name, namespace)
            # Flux accepts it: verified, and the tampered content is applied.
            applied = await kube.wait_for(
                KUSTOMIZE,
                "Kustomization",
                name,
                namespace,
                until=lambda o: (
                    (o or {}).get("status", {}).get("lastAppliedRevision") == forged_revision
                ),
                timeout=120,
                what=f"applied at {forged_revision}",
            )
            assert applied is not None
            assert await kube.get("v1", "ConfigMap", "tampered", namespace) is not None

            # fjord does not: the cell is not ready and says what happened and what to do.
            cell = await wait_cell(
                admin,
                app,
                "tt02",
                TT02,
                lambda c: c.get("reason") == "fjord/UnknownRevision",
                what="flagged",
            )
            assert cell["ready"] is False
            assert forged_revision in str(cell["message"])
            assert "never released" in str(cell["message"])
            audit = [dumped(e) for e in await admin.audit(org=ORG)]
            flagged = [e for e in audit if e["action"] == "release.unknown_revision"]
            assert any(e["detail"]["revision"] == forged_revision for e in flagged), flagged
        finally:
            await store.tag(repository, good_digest, "tt02")

        # Restored by deploying a fjord release again: flagged no more.
        again = await deploy_ready(platform, admin, app)
        assert again["digest"] == good_digest
        cell = await wait_cell(
            admin, app, "tt02", TT02, lambda c: c["ready"] is True, what="ready again"
        )
        assert cell["digest"] == good_digest
        await kube.wait_for(
            "v1", "ConfigMap", "tampered", namespace, until=lambda o: o is None, what="pruned"
        )


async def expect_refused(
    kube: Kube, source_name: str, forged_digest: str, good_revision: str
) -> None:
    """Flux's source refuses ``forged_digest`` with a verification error and keeps the good one."""
    token = await request_reconcile(kube, "OCIRepository", source_name, FLUX_NS)
    refused = await kube.wait_for(
        OCI,
        "OCIRepository",
        source_name,
        FLUX_NS,
        until=handled(token, verification_refused),
        timeout=120,
        what=f"refused by the signature check ({forged_digest})",
    )
    assert refused is not None
    assert (condition(refused, "Ready") or {}).get("status") == "False"
    message = str((condition(refused, "SourceVerified") or {}).get("message"))
    assert forged_digest.removeprefix("sha256:") in message, message
    assert refused["status"]["artifact"]["revision"] == good_revision


async def expect_good_running(kube: Kube, name: str, namespace: str, good_revision: str) -> None:
    token = await request_reconcile(kube, "Kustomization", name, namespace)
    kustomization = await kube.wait_for(
        KUSTOMIZE,
        "Kustomization",
        name,
        namespace,
        until=handled(token, lambda o: is_true(o, "Ready")),
        timeout=120,
        what="reconciled",
    )
    assert kustomization is not None
    assert kustomization["status"]["lastAppliedRevision"] == good_revision
    workload = await kube.get("apps/v1", "Deployment", name, namespace)
    assert workload is not None
    assert workload["spec"]["template"]["spec"]["containers"][0]["image"] == GOOD_IMAGE
    assert await kube.get("v1", "ConfigMap", "tampered", namespace) is None


async def test_a_valid_signature_copied_onto_a_tampered_artifact_is_refused_by_flux_itself(
    platform: Platform, admin: FjordClient, tmp_path: Path
) -> None:
    """Copied signatures stop at Flux's source-controller; the good revision keeps running.

    1. The good release's Sigstore bundle (its ``sha256-<hex>`` referrers index) and its legacy
       ``.sig``, both copied to the tampered digest: refused even during the migration window.
       Flux finds bundles, so it checks only bundles, and the signed statement names the good
       digest.
    2. The window closed on this cluster (its key Secret as fjord's bootstrap writes it with
       ``FJORD_LEGACY_SIGNATURES=off``: no ``legacy.pub``) and only the ``.sig`` copied: refused,
       because every legacy signature was made with the legacy key, which Flux no longer trusts.
       The good release still verifies by its bundle alone.
    """
    name = "e2e-bundle"
    namespace = f"{ORG}-{name}"
    source_name = f"{ORG}-{name}"
    app = await register(platform, admin, tmp_path, name)
    deployed = await deploy_ready(platform, admin, app)
    good_digest = deployed["digest"]
    good_revision = f"tt02@{good_digest}"
    repository = f"{ORG}/apps/{name}"

    async with registry(platform, ORG) as store, platform.kube(TT02) as kube:
        keys = secret_data(await kube.get("v1", "Secret", "fjord-cosign", FLUX_NS))
        assert set(keys) == {"cosign.pub", "legacy.pub"}  # the platform runs in the window
        good = await store.pull(repository, "tt02")
        forged = tampered(good, name)
        try:
            await store.push(repository, forged)
            good_sig = await store.resolve(repository, signature_tag(good_digest))
            assert good_sig is not None
            await store.tag(repository, good_sig, signature_tag(forged.digest))
            index = await store.get_manifest(repository, referrers_tag(good_digest))
            await store.put_index(repository, index, tag=referrers_tag(forged.digest))
            await store.tag(repository, forged.digest, "tt02")

            # 1. Bundle and .sig copied, window open: refused.
            await expect_refused(kube, source_name, forged.digest, good_revision)
            await expect_good_running(kube, name, namespace, good_revision)

            # 2. Window closed on this cluster, only the .sig copied: refused.
            await kube.patch(
                "v1",
                "Secret",
                "fjord-cosign",
                [{"op": "remove", "path": "/data/legacy.pub"}],
                FLUX_NS,
                content_type="application/json-patch+json",
            )
            closed = secret_data(await kube.get("v1", "Secret", "fjord-cosign", FLUX_NS))
            assert set(closed) == {"cosign.pub"}
            assert await store.delete_tag(repository, referrers_tag(forged.digest))
            assert await store.referrers(repository, forged.digest) == []
            await expect_refused(kube, source_name, forged.digest, good_revision)
            await expect_good_running(kube, name, namespace, good_revision)

            # The good release verifies by its bundle alone.
            await store.tag(repository, good_digest, "tt02")
            token = await request_reconcile(kube, "OCIRepository", source_name, FLUX_NS)
            restored = await kube.wait_for(
                OCI,
                "OCIRepository",
                source_name,
                FLUX_NS,
                until=handled(token, ready_with(good_revision)),
                timeout=120,
                what=f"Ready at {good_revision} with the window closed",
            )
            assert restored is not None
        finally:
            await store.tag(repository, good_digest, "tt02")
            restore = {"legacy.pub": base64.b64encode(keys["legacy.pub"].encode()).decode()}
            await kube.patch("v1", "Secret", "fjord-cosign", {"data": restore}, FLUX_NS)


# ---- 3b. tenant isolation of the stores ----------------------------------------------------


async def test_the_other_orgs_cluster_cannot_read_this_orgs_artifacts(
    platform: Platform,
) -> None:
    """digdir keeps its releases in its own Azurite container: its cluster holds no registry
    credentials at all, and its read-only SAS reads its own container and no other."""
    ttd = platform.state.registries["ttd"]
    own_container = platform.info["azure_orgs"]["digdir"]
    azurite = Azurite.load(platform.root / "azurite")
    assert azurite is not None
    # Another container of the same storage account, written with the account key.
    other_container = "e2e-other-org"
    async with ContainerClient.from_connection_string(
        azurite.connection_string, other_container, api_version=DEFAULT_API_VERSION
    ) as other:
        with contextlib.suppress(ResourceExistsError):
            await other.create_container()
        await other.upload_blob("tree/x/tt02/manifests.yaml", b"---\nx: 1\n", overwrite=True)

    def bucket(name: str, container: str, prefix: str) -> dict[str, Any]:
        return {
            "apiVersion": OCI,
            "kind": "Bucket",
            "metadata": {"name": name, "namespace": FLUX_NS},
            "spec": {
                "provider": "azure",
                "endpoint": azurite.blob_endpoint,
                "bucketName": container,
                "prefix": prefix,
                "interval": "10m",
                "secretRef": {"name": "fjord-azure"},
            },
        }

    stealing = {
        # ttd's registry, anonymously (the cluster has no registry credentials to try).
        ("OCIRepository", "e2e-steal-anonymously"): {
            "apiVersion": OCI,
            "kind": "OCIRepository",
            "metadata": {"name": "e2e-steal-anonymously", "namespace": FLUX_NS},
            "spec": {
                "url": f"oci://{ttd['host']}/ttd/apps/skjema",
                "ref": {"tag": "tt02"},
                "interval": "10m",
                "insecure": True,
            },
        },
        # The cluster's own SAS, used on another container.
        ("Bucket", "e2e-steal-with-own-sas"): bucket(
            "e2e-steal-with-own-sas", other_container, "tree/"
        ),
    }
    # Control: the same SAS reads the app's tree from the org's own container.
    own = bucket("e2e-own-org", own_container, "tree/digdir/apps/varsel/tt02/")
    async with platform.kube(OTHER_ORG_CLUSTER) as kube:
        assert await kube.get("v1", "Secret", "fjord-registry", FLUX_NS) is None
        sas = secret_data(await kube.get("v1", "Secret", "fjord-azure", FLUX_NS))["sasKey"]
        query = dict(item.split("=", 1) for item in sas.removeprefix("?").split("&"))
        assert (query["sp"], query["sr"]) == ("rl", "c")  # read + list, one container
        # No Secret anywhere in the cluster carries ttd's registry password.
        for secret in await kube.items("v1", "Secret"):
            for value in secret_data(secret).values():
                assert ttd["password"] not in value, secret["metadata"]

        try:
            for probe in [*stealing.values(), own]:
                await kube.apply(probe, field_manager="e2e")
            for kind, name in stealing:
                failed = await kube.wait_for(
                    OCI,
                    kind,
                    name,
                    FLUX_NS,
                    until=lambda o: (condition(o, "Ready") or {}).get("status") == "False",
                    timeout=120,
                    what="failed",
                )
                assert failed is not None
                message = str((condition(failed, "Ready") or {}).get("message"))
                if kind == "OCIRepository":
                    assert "UNAUTHORIZED" in message or "authentication required" in message
                else:
                    assert "AuthenticationFailed" in message or "403" in message, message
                assert "artifact" not in failed.get("status", {}), name
            read = await kube.wait_for(
                OCI, "Bucket", "e2e-own-org", FLUX_NS, until=has_artifact, timeout=120, what="Ready"
            )
            assert read is not None
            assert read["status"]["artifact"]["revision"].startswith("sha256:")
        finally:
            for kind, name in [*stealing, ("Bucket", "e2e-own-org")]:
                await kube.delete(OCI, kind, name, FLUX_NS)


# ---- 3c. forged Flux events ----------------------------------------------------------------


async def webhook_token(platform: Platform, cluster_id: str) -> str:
    """The HMAC token bootstrap gave the cluster (read from it; bootstrapping would rotate it)."""
    async with platform.kube(cluster_id) as kube:
        return secret_data(await kube.get("v1", "Secret", "fjord-webhook", FLUX_NS))["token"]


async def test_forged_flux_events_are_rejected_and_change_nothing(
    platform: Platform, admin: FjordClient, tmp_path: Path
) -> None:
    name = "e2e-forge"
    namespace = f"{ORG}-{name}"
    app = await register(platform, admin, tmp_path, name)
    deployed = await deploy_ready(platform, admin, app)
    before = await status_of(admin, app)
    running = cells(before, "tt02")[TT02]
    assert (running["ready"], running["digest"]) == (True, deployed["digest"])

    # What kustomize-controller would send if the app had broken: were it accepted, the app
    # would show as failed on a revision it never ran.
    body = json.dumps(
        {
            "involvedObject": {
                "apiVersion": KUSTOMIZE,
                "kind": "Kustomization",
                "name": name,
                "namespace": namespace,
            },
            "severity": "error",
            "timestamp": "2030-01-01T00:00:00Z",
            "message": "forged: Deployment/ttd-e2e-forge/e2e-forge health check failed",
            "reason": "HealthCheckFailed",
            "metadata": {"revision": f"tt02@sha256:{'0' * 64}"},
            "reportingController": "kustomize-controller",
            "reportingInstance": "forger",
        }
    ).encode()
    own = await webhook_token(platform, TT02)
    same_org_other_cluster = await webhook_token(platform, PRODUCTION[0])
    other_org = await webhook_token(platform, OTHER_ORG_CLUSTER)
    assert len({own, same_org_other_cluster, other_org}) == 3

    # (what, the cluster the event is posted for, its X-Signature)
    attempts: list[tuple[str, str, str | None]] = [
        ("no signature", TT02, None),
        ("a wrong signature", TT02, f"sha256={secrets.token_hex(32)}"),
        ("an empty signature", TT02, "sha256="),
        ("signed with prod-1's token", TT02, sign(same_org_other_cluster, body)),
        ("signed with digdir's token", TT02, sign(other_org, body)),
        ("another cluster's URL", PRODUCTION[0], sign(own, body)),
        ("an unknown cluster", "ttd.tt02.nope", sign(own, body)),
    ]
    # Flux's events carry no API token: only the signature may let them in.
    async with FjordClient.remote(platform.url, timeout=30) as anonymous:
        for what, target, signature in attempts:
            with pytest.raises(ApiError) as refused:
                await anonymous.flux_event(target, body, signature)
            assert refused.value.status == 401, (what, refused.value)
        assert recorded_events(platform, body) == 0
        after = await status_of(admin, app)
        assert after == before

        # Control: the same bytes signed with this cluster's own token are let in and count,
        # so the refusals above were the signature check's doing.
        accepted = await anonymous.flux_event(TT02, body, sign(own, body))
    assert (accepted.recorded, accepted.app) == (True, app)
    assert recorded_events(platform, body) == 1
    forged_cell = cells(await status_of(admin, app), "tt02")[TT02]
    assert forged_cell["ready"] is False
    assert str(forged_cell["message"]).startswith("forged:")


# ---- 4. credentials rotation ---------------------------------------------------------------


def mounted_secrets(workload: dict[str, Any] | None) -> set[str]:
    assert workload is not None
    volumes = workload["spec"]["template"]["spec"].get("volumes") or []
    return {v["secret"]["secretName"] for v in volumes if "secret" in v}


def can_log_in(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            return conn.execute("select 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


async def test_rotate_gives_new_credentials_and_a_rollback_finds_the_old_ones(
    platform: Platform, admin: FjordClient, tmp_path: Path
) -> None:
    name = "e2e-rotate"
    namespace = f"{ORG}-{name}"
    app = await register(platform, admin, tmp_path, name, redis=True)
    first = await deploy_ready(platform, admin, app)
    old_pg, old_redis = f"{name}-pg-forms", f"{name}-redis"
    new_pg, new_redis = f"{old_pg}-r1", f"{old_redis}-r1"

    async def secret(kube: Kube, secret_name: str) -> dict[str, str]:
        found = await kube.wait_for(
            "v1", "Secret", secret_name, namespace, until=lambda o: o is not None, timeout=180
        )
        return secret_data(found)

    async with platform.kube(TT02) as kube:
        before = await secret(kube, old_pg)

    # `fjord rotate`: a config change (audited) and a deploy of the release that mounts new names.
    cli = platform.cli("rotate", app, "--env", "tt02", "-o", "json")
    assert cli.returncode == 0, cli.stderr
    rotated = json.loads(cli.stdout)
    assert rotated["state"] == "ready", rotated
    assert rotated["digest"] != first["digest"]
    config = dumped(await admin.get_config(app))
    assert config["values"]["environments"]["tt02"]["credentialsRotation"] == 1
    assert "rotate credentials" in config["reason"]

    async with platform.kube(TT02) as kube:
        workload = await kube.get("apps/v1", "Deployment", name, namespace)
        assert {new_pg, new_redis} <= mounted_secrets(workload)
        after = await secret(kube, new_pg)
        assert after["user"] != before["user"]
        assert (await secret(kube, new_redis))["username"] != (await secret(kube, old_redis))[
            "username"
        ]
        # Both generations work: pods of the old ReplicaSet keep theirs until they are gone.
        assert can_log_in(after["url"])
        assert can_log_in(before["url"])
        assert {before["user"], after["user"]} <= pg_roles(platform)

    # Rolling back to the first release mounts the old names again, and they still work.
    back = await admin.rollback(app, "tt02", to=first["digest"])
    done = await platform.wait(admin, back.id)
    assert done["state"] == "ready", done
    async with platform.kube(TT02) as kube:
        workload = await kube.get("apps/v1", "Deployment", name, namespace)
        assert {old_pg, old_redis} <= mounted_secrets(workload)
        credentials = await kube.wait_for(
            "fjord.dev/v1alpha1",
            "AppCredentials",
            name,
            namespace,
            until=lambda o: (
                is_true(o, "Ready")
                and (o or {}).get("status", {}).get("observedGeneration")
                == (o or {}).get("metadata", {}).get("generation")
            ),
            timeout=180,
            what="Ready for the rolled-back spec",
        )
        assert credentials is not None
        restored = await secret(kube, old_pg)
        assert can_log_in(restored["url"])
