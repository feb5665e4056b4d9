"""Cosign-compatible keys, payloads and signatures (reference/flux.md section 4)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from fjord.artifact import (
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
    ArtifactError,
    VerificationError,
    build_artifact,
    generate_key_pair,
    load_private_key,
    load_public_key,
    signature_image,
    signature_tag,
    simple_signing_payload,
    verify_signature_image,
)

DIGEST = "sha256:" + "ab" * 32


def test_payload_is_byte_exact_simple_signing() -> None:
    assert simple_signing_payload(DIGEST, "127.0.0.1:5000/ttd/apps/app1") == (
        b'{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/ttd/apps/app1"},'
        b'"image":{"docker-manifest-digest":"' + DIGEST.encode() + b'"},'
        b'"type":"cosign container image signature"},"optional":null}'
    )


def test_signature_tag() -> None:
    assert signature_tag(DIGEST) == "sha256-" + "ab" * 32 + ".sig"
    with pytest.raises(ArtifactError):
        signature_tag("sha256:short")


def test_keys_are_pem_pkix_and_pkcs8() -> None:
    pair = generate_key_pair()
    assert pair.public_pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    assert pair.private_pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    key = load_private_key(pair.private_pem)
    assert isinstance(key.curve, ec.SECP256R1)
    assert isinstance(load_public_key(pair.public_pem), ec.EllipticCurvePublicKey)


def test_encrypted_private_key_needs_its_password() -> None:
    pair = generate_key_pair(b"hunter2")
    assert pair.private_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert isinstance(load_private_key(pair.private_pem, b"hunter2"), ec.EllipticCurvePrivateKey)
    with pytest.raises(ArtifactError):
        load_private_key(pair.private_pem, b"wrong")
    with pytest.raises(ArtifactError):
        load_private_key(pair.private_pem)


def test_signature_manifest_layout() -> None:
    key = load_private_key(generate_key_pair().private_pem)
    image = signature_image(DIGEST, "host/repo", key)
    manifest = image.document
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    [layer] = manifest["layers"]
    assert layer["mediaType"] == SIMPLE_SIGNING
    payload = image.blobs[layer["digest"]]
    assert json.loads(payload)["critical"]["image"]["docker-manifest-digest"] == DIGEST
    # The annotation is base64 DER ECDSA over SHA-256 of the exact payload bytes.
    signature = base64.b64decode(layer["annotations"][SIGNATURE_ANNOTATION])
    key.public_key().verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    image.check_complete()


def test_signing_is_deterministic_and_appends_other_keys() -> None:
    first = load_private_key(generate_key_pair().private_pem)
    second = load_private_key(generate_key_pair().private_pem)
    one = signature_image(DIGEST, "r", first)
    assert signature_image(DIGEST, "r", first, one).manifest == one.manifest
    both = signature_image(DIGEST, "r", second, one)
    assert len(both.document["layers"]) == 2
    assert verify_signature_image(both, DIGEST, [second.public_key()]).key_index == 0
    assert verify_signature_image(both, DIGEST, [first.public_key()]).key_index == 0


def test_verification_failures() -> None:
    key = load_private_key(generate_key_pair().private_pem)
    other = load_private_key(generate_key_pair().private_pem)
    digest = build_artifact({"a.yaml": b"a"}, source="s", revision="r").digest
    image = signature_image(digest, "r", key)
    verify_signature_image(image, digest, [key.public_key()])
    with pytest.raises(VerificationError, match="does not verify"):
        verify_signature_image(image, digest, [other.public_key()])
    with pytest.raises(VerificationError, match="covers"):
        verify_signature_image(image, DIGEST, [key.public_key()])
    with pytest.raises(VerificationError, match="no public keys"):
        verify_signature_image(image, digest, [])
