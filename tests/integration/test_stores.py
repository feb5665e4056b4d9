"""Behaviour every store shares, run against the local directory, real registries and Azurite."""

from __future__ import annotations

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
from fjord.artifact.oci import OCI_CONFIG, image_manifest
from fjord.artifact.signing import SIGNATURE_ANNOTATION, SIMPLE_SIGNING
from fjord.devcluster.azurite import Azurite
from fjord.devcluster.registry import LocalRegistry
from fjord.stores import (
    AzureBlobStore,
    LocalStore,
    NotFoundError,
    RegistryStore,
    Store,
    pull_verified,
    sign,
    verify,
)

FILES = {
    "tt02/app1.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app1\n",
    "production/app1.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app1-prod\n",
}


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


async def test_sign_and_verify(
    store: Store, repo: str, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    artifact = release()
    await store.push(repo, artifact, tag="tt02")
    sig_digest = await sign(store, repo, artifact.digest, signing_key)
    # Deterministic signatures: signing again changes nothing.
    assert await sign(store, repo, artifact.digest, signing_key) == sig_digest
    assert await store.resolve(repo, signature_tag(artifact.digest)) == sig_digest
    verified = await verify(store, repo, artifact.digest, [signing_key.public_key()])
    assert verified.docker_reference == store.docker_reference(repo)
    assert (await pull_verified(store, repo, "tt02", [signing_key.public_key()])) == artifact


async def test_signatures_accumulate_and_any_trusted_key_verifies(
    store: Store, repo: str, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    artifact = release()
    await store.push(repo, artifact)
    other = load_private_key(generate_key_pair().private_pem)
    await sign(store, repo, artifact.digest, signing_key)
    await sign(store, repo, artifact.digest, other)
    sig = await store.pull_image(repo, signature_tag(artifact.digest))
    assert len(sig.document["layers"]) == 2
    result = await verify(store, repo, artifact.digest, [other.public_key()])
    assert result.key_index == 0


async def test_untrusted_key_is_rejected(
    store: Store, repo: str, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    artifact = release()
    await store.push(repo, artifact, tag="tt02")
    await sign(store, repo, artifact.digest, signing_key)
    stranger = load_public_key(generate_key_pair().public_pem)
    with pytest.raises(VerificationError, match="does not verify"):
        await verify(store, repo, artifact.digest, [stranger])


async def test_unsigned_artifact_is_rejected(
    store: Store, repo: str, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    artifact = release()
    await store.push(repo, artifact, tag="tt02")
    with pytest.raises(VerificationError, match="no signature"):
        await pull_verified(store, repo, "tt02", [signing_key.public_key()])


async def test_signature_over_a_different_digest_is_rejected(
    store: Store, repo: str, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    signed = release()
    unsigned = release(revision="main@sha1:evil")
    await store.push(repo, signed)
    await store.push(repo, unsigned, tag="tt02")
    await sign(store, repo, signed.digest, signing_key)
    # Replay the valid signature of one artifact under the other artifact's .sig tag.
    replay = await store.pull_image(repo, signature_tag(signed.digest))
    await store.push(repo, replay, tag=signature_tag(unsigned.digest))
    with pytest.raises(VerificationError, match=f"covers {signed.digest}"):
        await pull_verified(store, repo, "tt02", [signing_key.public_key()])


async def test_tampered_signature_payload_is_rejected(
    store: Store, repo: str, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    genuine = release()
    forged = release(revision="main@sha1:forged")
    await store.push(repo, genuine)
    await store.push(repo, forged, tag="tt02")
    await sign(store, repo, genuine.digest, signing_key)
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
        await verify(store, repo, forged.digest, [signing_key.public_key()])
