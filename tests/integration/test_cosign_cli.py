"""The real ``cosign`` CLI (v3, built from its Go module) verifies what fjord signs.

Against Debian's Distribution 2.8 (no referrers API, so cosign reads the ``sha256-<hex>``
fallback index fjord writes): ``cosign verify`` accepts fjord's bundle signature,
``cosign verify-attestation --type slsaprovenance1`` accepts fjord's provenance, and both refuse
a bundle copied onto another artifact. A legacy ``.sig`` copied the same way is refused by
``cosign verify`` too (it checks the claim; Flux does not — see test_release_flux.py).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fjord.artifact.bundle import referrers_tag
from fjord.artifact.oci import build_artifact
from fjord.artifact.provenance import BuildFacts, Input
from fjord.artifact.signing import generate_key_pair, load_private_key, signature_tag
from fjord.devcluster.binaries import locate_group
from fjord.devcluster.registry import LocalRegistry
from fjord.stores import RegistryStore, Signer, attest_provenance, sign

FACTS = BuildFacts(
    org="ttd",
    app="cosigned",
    source="https://git.example/ttd/cosigned",
    revision="main@sha1:" + "5e" * 20,
    environments=("tt02",),
    dynamic_version=3,
    builder="fjord/0.0.0-test",
    inputs=(Input("fjord.yaml", "sha256:" + "77" * 32),),
)


@pytest.fixture(scope="module")
def cosign_bin() -> Path:
    return locate_group("cosign") / "cosign"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[ec.EllipticCurvePrivateKey, Path]:
    pair = generate_key_pair()
    public = tmp_path / "cosign.pub"
    public.write_bytes(pair.public_pem)
    return load_private_key(pair.private_pem), public


def cosign(cosign_bin: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No network, no TUF: key mode with the transparency log ignored needs neither.
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "TUF_ROOT": str(tmp_path / "tuf"),
        "SIGSTORE_NO_CACHE": "true",
    }
    return subprocess.run(
        [str(cosign_bin), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def verify_args(kind: str, public: Path, reference: str) -> list[str]:
    args = [kind, "--key", str(public), "--insecure-ignore-tlog=true", "--allow-http-registry"]
    if kind == "verify-attestation":
        args += ["--type", "slsaprovenance1"]
    return [*args, "--output", "json", reference]


async def test_cosign_verifies_fjord_bundles_and_refuses_copies(
    registry: LocalRegistry,
    cosign_bin: Path,
    keys: tuple[ec.EllipticCurvePrivateKey, Path],
    tmp_path: Path,
) -> None:
    key, public = keys
    repository = f"ttd/apps/cosigned-{uuid.uuid4().hex[:8]}"
    good = build_artifact({"tt02/a.yaml": b"kind: ConfigMap\n"}, source="s", revision="good")
    forged = build_artifact({"tt02/a.yaml": b"kind: Secret\n"}, source="s", revision="forged")
    legacy = load_private_key(generate_key_pair().private_pem)
    async with RegistryStore(registry.url) as store:
        await store.push(repository, good, tag="tt02")
        await store.push(repository, forged, tag="forged")
        await sign(store, repository, good.digest, Signer(key, legacy_key=legacy))
        await attest_provenance(store, repository, good.digest, key, FACTS)

    reference = f"{registry.host}/{repository}@{good.digest}"
    verified = cosign(cosign_bin, tmp_path, *verify_args("verify", public, reference))
    assert verified.returncode == 0, verified.stderr
    claims = json.loads(verified.stdout)
    assert {c["critical"]["image"]["docker-manifest-digest"] for c in claims} == {good.digest}
    # cosign lists every verified bundle: the signature and the provenance.
    assert {c["critical"]["type"] for c in claims} == {
        "https://sigstore.dev/cosign/sign/v1",
        "https://slsa.dev/provenance/v1",
    }

    attested = cosign(cosign_bin, tmp_path, *verify_args("verify-attestation", public, reference))
    assert attested.returncode == 0, attested.stderr
    envelope = json.loads(attested.stdout.splitlines()[0])
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["subject"][0]["digest"] == {"sha256": good.digest.removeprefix("sha256:")}
    builder = statement["predicate"]["runDetails"]["builder"]
    assert builder == {"id": "https://fjord.dev/builder", "version": {"fjord": "0.0.0-test"}}

    # Another key: refused.
    other = tmp_path / "other.pub"
    other.write_bytes(generate_key_pair().public_pem)
    stranger = cosign(cosign_bin, tmp_path, *verify_args("verify", other, reference))
    assert stranger.returncode != 0
    assert "no matching attestations" in stranger.stderr

    # The good artifact's referrers index copied onto the forged digest: refused, because the
    # signed statement names the good digest.
    async with RegistryStore(registry.url) as store:
        index = await store.get_manifest(repository, referrers_tag(good.digest))
        await store.put_index(repository, index, tag=referrers_tag(forged.digest))
    forged_ref = f"{registry.host}/{repository}@{forged.digest}"
    for kind in ("verify", "verify-attestation"):
        copied = cosign(cosign_bin, tmp_path, *verify_args(kind, public, forged_ref))
        assert copied.returncode != 0, (kind, copied.stdout)
        assert "artifact digest does not match any digest in statement" in copied.stderr


async def test_cosign_refuses_a_copied_legacy_signature(
    registry: LocalRegistry,
    cosign_bin: Path,
    keys: tuple[ec.EllipticCurvePrivateKey, Path],
    tmp_path: Path,
) -> None:
    """``cosign verify`` checks the legacy payload's digest claim (Flux does not)."""
    key, public = keys
    repository = f"ttd/apps/legacy-{uuid.uuid4().hex[:8]}"
    good = build_artifact({"tt02/a.yaml": b"kind: ConfigMap\n"}, source="s", revision="good")
    forged = build_artifact({"tt02/a.yaml": b"kind: Secret\n"}, source="s", revision="forged")
    async with RegistryStore(registry.url) as store:
        await store.push(repository, good)
        await store.push(repository, forged)
        # The legacy format alone, signed with the key cosign is given.
        await sign(store, repository, good.digest, Signer(key, legacy_key=key, bundles=False))
        sig = await store.resolve(repository, signature_tag(good.digest))
        assert sig is not None
        await store.tag(repository, sig, signature_tag(forged.digest))

    ok = cosign(
        cosign_bin,
        tmp_path,
        *verify_args("verify", public, f"{registry.host}/{repository}@{good.digest}"),
    )
    assert ok.returncode == 0, ok.stderr
    copied = cosign(
        cosign_bin,
        tmp_path,
        *verify_args("verify", public, f"{registry.host}/{repository}@{forged.digest}"),
    )
    assert copied.returncode != 0
    assert f"invalid or missing digest in claim: {good.digest}" in copied.stderr
