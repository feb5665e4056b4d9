"""Behaviour every store shares, run against the local directory, real registries and Azurite."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fjord.artifact import (
    Artifact,
    DigestMismatchError,
    Image,
    VerificationError,
    build_artifact,
    generate_key_pair,
    load_private_key,
    load_public_key,
    signature_tag,
)
from fjord.artifact.bundle import BUNDLE_MEDIA_TYPE, referrers_tag
from fjord.artifact.oci import OCI_CONFIG, image_manifest
from fjord.artifact.provenance import BuildFacts, Input, summarize
from fjord.artifact.signing import SIGNATURE_ANNOTATION, SIMPLE_SIGNING
from fjord.devcluster.azurite import Azurite
from fjord.devcluster.registry import LocalRegistry
from fjord.stores import (
    AzureBlobStore,
    LocalStore,
    NotFoundError,
    RegistryStore,
    Signer,
    Store,
    Trust,
    attest_provenance,
    provenance,
    pull_verified,
    sign,
    sign_legacy,
    verify,
    verify_legacy,
)

FILES = {
    "tt02/app1.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app1\n",
    "production/app1.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app1-prod\n",
}


def legacy_only(key: ec.EllipticCurvePrivateKey) -> Trust:
    """Trust a legacy `.sig` by ``key`` and no bundle key (the legacy format's tests)."""
    return Trust(keys=[], legacy_keys=[key.public_key()])


def release(files: dict[str, bytes] = FILES, revision: str = "main@sha1:aaaa") -> Artifact:
    return build_artifact(files, source="https://git.example/ttd/app1", revision=revision)


@pytest.fixture(params=["local", "registry", "auth_registry", "azure"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    kind = request.param
    result: Store
    if kind == "local":
        result = LocalStore(tmp_path / "store")
    elif kind in ("registry", "auth_registry"):
        server: LocalRegistry = request.getfixturevalue(kind)
        result = RegistryStore(server.url, username=server.username, password=server.password)
    else:
        azurite: Azurite = request.getfixturevalue("azurite")
        result = AzureBlobStore.from_connection_string(
            azurite.connection_string, f"c{uuid.uuid4().hex[:12]}"
        )
    async with result:
        yield result


@pytest.fixture
def repo() -> str:
    return f"ttd/apps/app-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def signing_key() -> ec.EllipticCurvePrivateKey:
    return load_private_key(generate_key_pair().private_pem)


async def test_publish_and_pull_round_trip(store: Store, repo: str) -> None:
    artifact = release()
    digest = await store.push(repo, artifact, tag="tt02")
    assert digest == artifact.digest
    assert await store.resolve(repo, "tt02") == digest
    pulled = await store.pull(repo, "tt02")
    assert pulled == artifact
    assert pulled.files() == FILES
    assert (await store.pull(repo, digest)).manifest == artifact.manifest
    assert await store.list_tags(repo) == ["tt02"]


async def test_push_is_idempotent(store: Store, repo: str) -> None:
    artifact = release()
    assert await store.push(repo, artifact, tag="tt02") == await store.push(
        repo, artifact, tag="tt02"
    )
    assert await store.list_tags(repo) == ["tt02"]


async def test_tags_move_and_promote_by_digest(store: Store, repo: str) -> None:
    first = release(revision="main@sha1:1111")
    second = release({**FILES, "tt02/extra.yaml": b"kind: Extra\n"}, revision="main@sha1:2222")
    await store.push(repo, first, tag="tt02")
    await store.push(repo, second, tag="tt02")
    assert await store.resolve(repo, "tt02") == second.digest
    # Promotion points the next environment at the same digest.
    await store.tag(repo, second.digest, "production")
    assert await store.resolve(repo, "production") == second.digest
    # Rollback re-points at the earlier release, still present by digest.
    await store.tag(repo, first.digest, "tt02")
    assert (await store.pull(repo, "tt02")).revision == "main@sha1:1111"
    assert await store.list_tags(repo) == ["production", "tt02"]


async def test_tag_refuses_a_manifest_the_store_lacks(store: Store, repo: str) -> None:
    present = release()
    absent = release(revision="main@sha1:never-pushed")
    await store.push(repo, present, tag="tt02")
    with pytest.raises(NotFoundError):
        await store.tag(repo, absent.digest, "tt02")
    assert await store.resolve(repo, "tt02") == present.digest


async def test_a_corrupt_blob_is_rejected_before_anything_moves(store: Store, repo: str) -> None:
    good = release()
    await store.push(repo, good, tag="tt02")
    bad = release({"tt02/other.yaml": b"kind: Other\n"}, revision="main@sha1:bad")
    blobs = dict(bad.image.blobs)
    layer_digest = next(d for d, data in blobs.items() if data == bad.layer)
    blobs[layer_digest] = bad.layer + b"tampered"
    with pytest.raises(DigestMismatchError):
        await store.push(repo, Image(manifest=bad.manifest, blobs=blobs), tag="tt02")
    assert await store.resolve(repo, "tt02") == good.digest
    assert not await store.blob_exists(repo, layer_digest)


async def test_delete_tag_keeps_the_manifest(store: Store, repo: str) -> None:
    artifact = release()
    await store.push(repo, artifact, tag="tt02")
    await store.tag(repo, artifact.digest, "production")
    assert await store.delete_tag(repo, "tt02")
    assert not await store.delete_tag(repo, "tt02")
    assert await store.resolve(repo, "tt02") is None
    assert await store.list_tags(repo) == ["production"]
    assert (await store.pull(repo, artifact.digest)).files() == FILES
    with pytest.raises(NotFoundError):
        await store.pull(repo, "tt02")


async def test_unknown_repository_is_empty(store: Store, repo: str) -> None:
    assert await store.list_tags(repo) == []
    assert await store.resolve(repo, "tt02") is None


async def test_legacy_sign_and_verify(
    store: Store, repo: str, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    artifact = release()
    await store.push(repo, artifact, tag="tt02")
    sig_digest = await sign_legacy(store, repo, artifact.digest, signing_key)
    # Deterministic signatures: signing again changes nothing.
    assert await sign_legacy(store, repo, artifact.digest, signing_key) == sig_digest
    assert await store.resolve(repo, signature_tag(artifact.digest)) == sig_digest
    verified = await verify_legacy(store, repo, artifact.digest, [signing_key.public_key()])
    assert verified.docker_reference == store.docker_reference(repo)
    assert (await pull_verified(store, repo, "tt02", legacy_only(signing_key))) == artifact


async def test_signatures_accumulate_and_any_trusted_key_verifies(
    store: Store, repo: str, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    artifact = release()
    await store.push(repo, artifact)
    other = load_private_key(generate_key_pair().private_pem)
    await sign_legacy(store, repo, artifact.digest, signing_key)
    await sign_legacy(store, repo, artifact.digest, other)
    sig = await store.pull_image(repo, signature_tag(artifact.digest))
    assert len(sig.document["layers"]) == 2
    result = await verify_legacy(store, repo, artifact.digest, [other.public_key()])
    assert result.key_index == 0


async def test_untrusted_key_is_rejected(
    store: Store, repo: str, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    artifact = release()
    await store.push(repo, artifact, tag="tt02")
    await sign_legacy(store, repo, artifact.digest, signing_key)
    stranger = load_public_key(generate_key_pair().public_pem)
    with pytest.raises(VerificationError, match="does not verify"):
        await verify_legacy(store, repo, artifact.digest, [stranger])


async def test_unsigned_artifact_is_rejected(
    store: Store, repo: str, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    artifact = release()
    await store.push(repo, artifact, tag="tt02")
    with pytest.raises(VerificationError, match="no signature"):
        await pull_verified(store, repo, "tt02", legacy_only(signing_key))


async def test_signature_over_a_different_digest_is_rejected(
    store: Store, repo: str, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    signed = release()
    unsigned = release(revision="main@sha1:evil")
    await store.push(repo, signed)
    await store.push(repo, unsigned, tag="tt02")
    await sign_legacy(store, repo, signed.digest, signing_key)
    # Replay the valid signature of one artifact under the other artifact's .sig tag.
    replay = await store.pull_image(repo, signature_tag(signed.digest))
    await store.push(repo, replay, tag=signature_tag(unsigned.digest))
    with pytest.raises(VerificationError, match=f"covers {signed.digest}"):
        await pull_verified(store, repo, "tt02", legacy_only(signing_key))


async def test_tampered_signature_payload_is_rejected(
    store: Store, repo: str, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    genuine = release()
    forged = release(revision="main@sha1:forged")
    await store.push(repo, genuine)
    await store.push(repo, forged, tag="tt02")
    await sign_legacy(store, repo, genuine.digest, signing_key)
    sig = await store.pull_image(repo, signature_tag(genuine.digest))
    # Keep the genuine signature annotation but point the payload at the forged digest.
    payload = next(b for b in sig.blobs.values() if genuine.digest.encode() in b)
    forged_payload = payload.replace(genuine.digest.encode(), forged.digest.encode())
    signature = sig.document["layers"][0]["annotations"][SIGNATURE_ANNOTATION]
    config = b"{}"
    manifest = image_manifest(
        OCI_CONFIG, config, [(SIMPLE_SIGNING, forged_payload, {SIGNATURE_ANNOTATION: signature})]
    )
    tampered = Image(
        manifest=manifest,
        blobs={
            Image(manifest=config).digest: config,
            Image(manifest=forged_payload).digest: forged_payload,
        },
    )
    await store.push(repo, tampered, tag=signature_tag(forged.digest))
    with pytest.raises(VerificationError, match="does not verify"):
        await verify_legacy(store, repo, forged.digest, [signing_key.public_key()])


# ---- Sigstore bundles (digest-bound) and provenance ------------------------------------------


FACTS = BuildFacts(
    org="ttd",
    app="app1",
    source="https://git.example/ttd/app1",
    revision="main@sha1:" + "ab" * 20,
    environments=("tt02", "production"),
    dynamic_version=4,
    builder="fjord/9.9.9",
    inputs=(Input("fjord.yaml", "sha256:" + "cd" * 32),),
)


async def test_bundle_sign_and_verify(
    store: Store, repo: str, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    artifact = release()
    await store.push(repo, artifact, tag="tt02")
    signed = await sign(store, repo, artifact.digest, Signer(signing_key))
    assert signed.legacy is None
    assert signed.bundle is not None
    # Deterministic: signing again writes the same referrer and lists it once.
    assert await sign(store, repo, artifact.digest, Signer(signing_key)) == signed
    listed = await store.referrers(repo, artifact.digest)
    assert [d["digest"] for d in listed] == [signed.bundle]
    assert listed[0]["artifactType"] == BUNDLE_MEDIA_TYPE
    referrer = await store.pull_image(repo, signed.bundle)
    assert referrer.document["subject"]["digest"] == artifact.digest
    trust = Trust(keys=[signing_key.public_key()])
    assert (await verify(store, repo, artifact.digest, trust)).format == "bundle"
    assert await pull_verified(store, repo, "tt02", trust) == artifact
    assert await store.resolve(repo, signature_tag(artifact.digest)) is None  # no legacy .sig


async def test_a_bundle_copied_to_another_digest_is_rejected(
    store: Store, repo: str, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    good, forged = release(), release(revision="main@sha1:evil")
    await store.push(repo, good)
    await store.push(repo, forged, tag="tt02")
    await sign(store, repo, good.digest, Signer(signing_key))
    # Copy the good artifact's referrers list (and so its bundle) onto the forged digest.
    index = await store.get_manifest(repo, referrers_tag(good.digest))
    await store.put_index(repo, index, tag=referrers_tag(forged.digest))
    assert [d["digest"] for d in await store.referrers(repo, forged.digest)]
    with pytest.raises(VerificationError, match=f"about {good.digest}, not {forged.digest}"):
        await pull_verified(store, repo, "tt02", Trust(keys=[signing_key.public_key()]))


async def test_legacy_signatures_count_only_while_the_legacy_key_is_trusted(
    store: Store, repo: str, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    artifact = release()
    await store.push(repo, artifact)
    legacy = load_private_key(generate_key_pair().private_pem)
    signed = await sign(
        store, repo, artifact.digest, Signer(signing_key, legacy_key=legacy, bundles=False)
    )
    assert signed.bundle is None
    assert signed.legacy is not None
    window = Trust(keys=[signing_key.public_key()], legacy_keys=[legacy.public_key()])
    assert (await verify(store, repo, artifact.digest, window)).format == "legacy"
    closed = Trust(keys=[signing_key.public_key(), legacy.public_key()])
    with pytest.raises(VerificationError, match="no Sigstore bundle"):
        await verify(store, repo, artifact.digest, closed)


async def test_provenance_is_signed_and_is_not_a_signature(
    store: Store, repo: str, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    artifact = release()
    await store.push(repo, artifact)
    await attest_provenance(store, repo, artifact.digest, signing_key, FACTS)
    trust = Trust(keys=[signing_key.public_key()])
    with pytest.raises(
        VerificationError, match=re.escape("predicate type https://slsa.dev/provenance/v1")
    ):
        await verify(store, repo, artifact.digest, trust)
    await sign(store, repo, artifact.digest, Signer(signing_key))
    assert len(await store.referrers(repo, artifact.digest)) == 2
    attested = await provenance(store, repo, artifact.digest, trust.keys)
    summary = summarize(attested.predicate)
    assert summary.commit == "ab" * 20
    assert summary.dynamic_version == 4
    assert summary.builder_version == "fjord 9.9.9"
    assert summary.environments == ("tt02", "production")
    assert Input("fjord.yaml", "sha256:" + "cd" * 32) in summary.inputs
    stranger = load_private_key(generate_key_pair().private_pem)
    with pytest.raises(VerificationError, match="does not verify with any trusted key"):
        await provenance(store, repo, artifact.digest, [stranger.public_key()])


async def test_several_tags_move_together_or_not_at_all(store: Store, repo: str) -> None:
    first = release(revision="main@sha1:1111")
    second = release({**FILES, "tt02/extra.yaml": b"kind: Extra\n"}, revision="main@sha1:2222")
    never_pushed = release(revision="main@sha1:never-pushed")
    await store.push(repo, first, tag="tt02-a")
    await store.push(repo, second)
    # A wave: one check of the manifest and its blobs, then every cluster's tag.
    await store.tag(repo, second.digest, "tt02-a", "tt02-b", "tt02-c", manifest=second.manifest)
    for tag in ("tt02-a", "tt02-b", "tt02-c"):
        assert await store.resolve(repo, tag) == second.digest
    with pytest.raises(NotFoundError, match="tt02-a,tt02-d"):
        await store.tag(
            repo, never_pushed.digest, "tt02-a", "tt02-d", manifest=never_pushed.manifest
        )
    assert await store.resolve(repo, "tt02-a") == second.digest
    assert await store.resolve(repo, "tt02-d") is None
