"""fjord's signed releases through real Flux: `spec.verify` accepts them and rejects the rest.

The release is signed with a Sigstore bundle only (no legacy `.sig`), so Flux's acceptance
proves it found the bundle through the referrers fallback tag of Debian's Distribution 2.8 and
verified it. Copies are refused: a bundle copied onto tampered content (its subject is another
digest), and a legacy `.sig` copied onto tampered content once the legacy key is no longer in
the key Secret — while it still is (the migration window), Flux lets that copy through, which
is why fjord keeps the legacy key apart from the bundle key.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fjord.artifact.bundle import referrers_tag
from fjord.artifact.oci import build_artifact
from fjord.artifact.signing import generate_key_pair, load_private_key, signature_tag
from fjord.devcluster.registry import LocalRegistry
from fjord.kube import Kube, condition, has_artifact, is_true
from fjord.releases import build_release, publish
from fjord.spec import default_platform
from fjord.spec.platform import IngressRouting
from fjord.stores import RegistryStore, Signer, sign_legacy

pytestmark = [pytest.mark.cluster, pytest.mark.flux]

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "platform-app"
OCI = "source.toolkit.fluxcd.io/v1"


async def install_fjord_crds(kube: Kube) -> None:
    for path in sorted((REPO_ROOT / "deploy" / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        await kube.apply(crd, field_manager="test", force=True)
        await kube.wait_for(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            crd["metadata"]["name"],
            until=lambda o: is_true(o, "Established"),
        )


def oci_repository(
    name: str, ns: str, url: str, tag: str, keys: str = "cosign-keys"
) -> dict[str, Any]:
    return {
        "apiVersion": OCI,
        "kind": "OCIRepository",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "url": url,
            "ref": {"tag": tag},
            "interval": "10m",
            "insecure": True,
            "verify": {"provider": "cosign", "secretRef": {"name": keys}},
        },
    }


def key_secret(name: str, ns: str, **pems: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "data": {f"{k}.pub": base64.b64encode(v).decode() for k, v in pems.items()},
    }


def ready_status(value: str) -> Callable[[dict[str, Any] | None], bool]:
    return lambda o: (condition(o, "Ready") or {}).get("status") == value


async def test_flux_verifies_fjord_signatures_and_applies_the_environment(
    flux_kube: Kube, flux_namespace: str, registry: LocalRegistry
) -> None:
    ns = flux_namespace
    platform = default_platform().model_copy(update={"routing": IngressRouting(flavour="ingress")})
    release = build_release(
        EXAMPLE, source="https://git.example/ttd/skjema", revision="main@sha1:1", platform=platform
    )
    keys = generate_key_pair()
    other_keys = generate_key_pair()
    legacy_keys = generate_key_pair()
    async with RegistryStore(registry.url) as store:
        published = await publish(
            store, release, signer=Signer(load_private_key(keys.private_pem)), tags=["tt02"]
        )
        assert published.legacy_signature is None
        # Tampered content carrying the good release's bundle (its referrers index copied).
        copied_bundle = build_artifact({"tt02/x.yaml": b"{}\n"}, source="s", revision="bundle")
        await store.push(release.repository, copied_bundle, tag="copied-bundle")
        index = await store.get_manifest(release.repository, referrers_tag(published.digest))
        await store.put_index(release.repository, index, tag=referrers_tag(copied_bundle.digest))
        # Tampered content carrying a legacy `.sig` of the good release, copied.
        await sign_legacy(
            store, release.repository, published.digest, load_private_key(legacy_keys.private_pem)
        )
        copied_sig = build_artifact({"tt02/x.yaml": b"{}\n"}, source="s", revision="legacy")
        await store.push(release.repository, copied_sig, tag="copied-sig")
        good_sig = await store.resolve(release.repository, signature_tag(published.digest))
        assert good_sig is not None
        await store.tag(release.repository, good_sig, signature_tag(copied_sig.digest))
        # Unsigned: the same repository, a different artifact, never signed.
        unsigned = build_artifact({"tt02/x.yaml": b"{}\n"}, source="s", revision="unsigned")
        await store.push(release.repository, unsigned, tag="unsigned")
        # Signed by a key Flux does not trust.
        foreign = build_release(
            EXAMPLE,
            source="https://git.example/ttd/skjema",
            revision="main@sha1:2",
            platform=platform,
        )
        await publish(
            store,
            foreign,
            signer=Signer(load_private_key(other_keys.private_pem)),
            tags=["foreign"],
        )

    await install_fjord_crds(flux_kube)
    # What fjord's bootstrap writes after the migration window, and during it.
    await flux_kube.apply(
        key_secret("cosign-keys", ns, cosign=keys.public_pem), field_manager="test"
    )
    await flux_kube.apply(
        key_secret("window-keys", ns, cosign=keys.public_pem, legacy=legacy_keys.public_pem),
        field_manager="test",
    )
    url = f"oci://{registry.host}/{release.repository}"
    sources = (
        ("signed", "tt02", "cosign-keys"),
        ("unsigned", "unsigned", "cosign-keys"),
        ("foreign", "foreign", "cosign-keys"),
        ("copied-bundle", "copied-bundle", "window-keys"),
        ("copied-sig", "copied-sig", "cosign-keys"),
        ("copied-sig-window", "copied-sig", "window-keys"),
    )
    for name, tag, secret in sources:
        await flux_kube.apply(oci_repository(name, ns, url, tag, secret), field_manager="test")

    signed = await flux_kube.wait_for(OCI, "OCIRepository", "signed", ns, until=has_artifact)
    assert signed is not None
    assert signed["status"]["artifact"]["revision"] == f"tt02@{published.digest}"
    assert is_true(signed, "SourceVerified")
    assert signed["status"]["artifact"]["metadata"]["dev.fjord.app"] == "skjema"

    for name in ("unsigned", "foreign", "copied-bundle", "copied-sig"):
        rejected = await flux_kube.wait_for(
            OCI, "OCIRepository", name, ns, until=ready_status("False")
        )
        verified = condition(rejected, "SourceVerified") or {}
        assert verified.get("status") == "False", name
        assert verified.get("reason") == "VerificationError", name
        assert "artifact" not in (rejected or {}).get("status", {}), name

    # The control: the same copied `.sig` passes while the legacy key is trusted (Flux does not
    # compare the payload's digest claim), so the refusal above is the closed window's doing.
    window = await flux_kube.wait_for(
        OCI, "OCIRepository", "copied-sig-window", ns, until=has_artifact
    )
    assert window is not None
    assert window["status"]["artifact"]["revision"] == f"copied-sig@{copied_sig.digest}"

    # The signed artifact's tt02 directory applies: the release's namespace, its workload and
    # the per-app infrastructure resources the operators will act on.
    app_ns = "ttd-skjema"
    await flux_kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": app_ns}},
        field_manager="test",
    )
    try:
        await flux_kube.apply(
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": "skjema", "namespace": ns},
                "spec": {
                    "sourceRef": {"kind": "OCIRepository", "name": "signed"},
                    "path": "./tt02",
                    "prune": True,
                    "interval": "10m",
                },
            },
            field_manager="test",
        )
        revision = f"tt02@{published.digest}"
        applied = await flux_kube.wait_for(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            "skjema",
            ns,
            until=lambda o: (
                is_true(o, "Ready")
                and (o or {}).get("status", {}).get("lastAppliedRevision") == revision
            ),
            what=f"Ready at {revision}",
        )
        assert applied is not None
        assert applied["status"]["lastAppliedRevision"] == f"tt02@{published.digest}"
        deployment = await flux_kube.get("apps/v1", "Deployment", "skjema", app_ns)
        assert deployment is not None
        assert await flux_kube.get("fjord.dev/v1alpha1", "MaskinportenClient", "skjema", app_ns)
        assert await flux_kube.get("fjord.dev/v1alpha1", "AppCredentials", "skjema", app_ns)
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == "ghcr.io/fjord-demo/skjema:1.3.0"
    finally:
        await flux_kube.delete("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "skjema", ns)
        await flux_kube.delete("v1", "Namespace", app_ns)
        await flux_kube.wait_for("v1", "Namespace", app_ns, until=lambda o: o is None, timeout=120)
