"""Cosign-compatible key-based signatures in the legacy "simple signing" layout.

Kept for a migration window only (see docs/signing.md): Flux checks the digest-bound Sigstore
bundles of :mod:`.bundle` first and falls back to this layout only when an artifact has no
bundle, and in that fallback it never compares the payload's digest claim with the artifact —
a valid ``.sig`` copied to another digest's tag passes Flux. fjord's own verifier below does
check the claim.

What Flux's ``OCIRepository.spec.verify`` (provider ``cosign``, key mode) accepts, per
reference/flux.md section 4:

* keys: ECDSA P-256; the public key is a PEM PKIX ``-----BEGIN PUBLIC KEY-----`` block, which
  goes into a Secret under a data key ending in ``.pub`` (``cosign.pub``);
* payload: ``{"critical":{"identity":{"docker-reference":…},"image":{"docker-manifest-digest":
  "sha256:…"},"type":"cosign container image signature"},"optional":null}``;
* signature: base64 of the DER ECDSA signature over SHA-256 of the exact payload bytes, in the
  layer annotation ``dev.cosignproject.cosign/signature``;
* storage: an image manifest (config ``application/vnd.oci.image.config.v1+json``, one layer of
  ``application/vnd.dev.cosign.simplesigning.v1+json`` per signature) tagged
  ``sha256-<manifest-hex>.sig`` in the artifact's repository.

Private keys are PKCS#8 PEM, encrypted with the password when one is given. That is not
cosign's own ``ENCRYPTED SIGSTORE PRIVATE KEY`` (scrypt + secretbox) format; ``cosign
import-key-pair --key cosign.key`` converts a PKCS#8 key when the cosign binary is needed.

Signatures use RFC 6979 deterministic ECDSA, so signing the same digest with the same key twice
yields the same ``.sig`` manifest: a no-op release changes nothing in the store.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from fjord.artifact.digest import canonical_json, check_digest, sha256_digest
from fjord.artifact.errors import ArtifactError, VerificationError
from fjord.artifact.oci import OCI_CONFIG, Image, image_manifest, parse_manifest

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class KeyPair:
    """PEM bytes of a signing key: ``private_pem`` (PKCS#8) and ``public_pem`` (PKIX)."""

    private_pem: bytes
    public_pem: bytes


@dataclass(frozen=True)
class VerifiedSignature:
    """A signature that verified: which payload, the index of the key that signed, and the
    format (``legacy`` simple signing or a Sigstore ``bundle``)."""

    digest: str
    docker_reference: str
    payload_digest: str
    key_index: int
    format: str = "legacy"


def generate_key_pair(password: bytes | None = None) -> KeyPair:
    """A fresh ECDSA P-256 key pair; the private key is encrypted when ``password`` is given."""
    key = ec.generate_private_key(ec.SECP256R1())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return KeyPair(private_pem=private_pem, public_pem=public_key_pem(key))


def public_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The PKIX PEM public key Flux reads from ``cosign.pub``."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(pem: bytes, password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """Load a PKCS#8 (or SEC1) PEM ECDSA P-256 private key."""
    try:
        key = serialization.load_pem_private_key(pem, password=password or None)
    except (ValueError, TypeError) as exc:
        raise ArtifactError(
            f"cannot load the signing key: {exc}", hint="is the password right?"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ArtifactError("the signing key is not an ECDSA P-256 key")
    return key


def load_public_key(pem: bytes) -> PublicKey:
    """Load a PEM PKIX public key of a kind Flux accepts (ECDSA, RSA or Ed25519)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ArtifactError(f"cannot load the public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise ArtifactError(f"unsupported public key type {type(key).__name__}")
    return key


def signature_tag(digest: str) -> str:
    """The tag cosign's legacy layout stores a digest's signatures under."""
    return check_digest(digest).replace(":", "-", 1) + ".sig"


def simple_signing_payload(digest: str, docker_reference: str) -> bytes:
    """The exact payload bytes that are signed (canonical JSON, as cosign marshals it)."""
    return canonical_json(
        {
            "critical": {
                "identity": {"docker-reference": docker_reference},
                "image": {"docker-manifest-digest": check_digest(digest)},
                "type": PAYLOAD_TYPE,
            },
            "optional": None,
        }
    )


def sign_payload(key: ec.EllipticCurvePrivateKey, payload: bytes) -> str:
    """Base64 DER ECDSA-SHA256 signature over ``payload`` (deterministic, RFC 6979)."""
    signature = key.sign(payload, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    return base64.b64encode(signature).decode()


def _signature_config(payloads: Sequence[bytes]) -> bytes:
    # cosign writes go-containerregistry's empty-image config with one diff_id per payload;
    # nothing on the verify side reads it, but matching keeps the layout familiar.
    return canonical_json(
        {
            "architecture": "",
            "config": {},
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(p) for p in payloads]},
        }
    )


def _signature_layers(image: Image) -> list[tuple[bytes, str]]:
    """(payload, base64 signature) of every simple-signing layer of a ``.sig`` image."""
    layers = []
    for desc in parse_manifest(image.manifest).get("layers") or []:
        if not isinstance(desc, dict) or desc.get("mediaType") != SIMPLE_SIGNING:
            continue
        payload = image.blobs.get(str(desc.get("digest")))
        signature = (desc.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
        if payload is not None and isinstance(signature, str):
            layers.append((payload, signature))
    return layers


def signature_image(
    digest: str,
    docker_reference: str,
    key: ec.EllipticCurvePrivateKey,
    existing: Image | None = None,
) -> Image:
    """The ``.sig`` image for ``digest`` signed by ``key``, keeping ``existing`` signatures.

    Like cosign, a new signature is appended as another layer; an identical payload and
    signature already present is not added twice, so re-signing is idempotent.
    """
    payload = simple_signing_payload(digest, docker_reference)
    entries = _signature_layers(existing) if existing is not None else []
    new_entry = (payload, sign_payload(key, payload))
    if new_entry not in entries:
        entries.append(new_entry)
    config = _signature_config([p for p, _ in entries])
    manifest = image_manifest(
        OCI_CONFIG,
        config,
        [(SIMPLE_SIGNING, p, {SIGNATURE_ANNOTATION: s}) for p, s in entries],
    )
    blobs = {sha256_digest(config): config}
    blobs.update({sha256_digest(p): p for p, _ in entries})
    return Image(manifest=manifest, blobs=blobs)


def signature_valid(key: PublicKey, signature: bytes, payload: bytes) -> bool:
    """Whether ``signature`` is ``key``'s signature over ``payload`` (ECDSA/RSA: SHA-256)."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, payload)
    except InvalidSignature:
        return False
    return True


def _payload_fields(payload: bytes) -> tuple[str, str] | None:
    """(docker-manifest-digest, docker-reference) of a payload, or None if malformed."""
    try:
        document: Any = json.loads(payload)
        critical = document["critical"]
        if critical["type"] != PAYLOAD_TYPE:
            return None
        return str(critical["image"]["docker-manifest-digest"]), str(
            critical["identity"]["docker-reference"]
        )
    except (ValueError, KeyError, TypeError):
        return None


def verify_signature_image(
    image: Image, digest: str, public_keys: Sequence[PublicKey]
) -> VerifiedSignature:
    """Check that some layer of a ``.sig`` image is a valid signature over ``digest``.

    As in cosign, the signature is checked over the exact payload bytes first and then the
    payload's ``docker-manifest-digest`` must equal ``digest``; ``docker-reference`` is not
    enforced. Blob digests must already have been verified by whoever fetched ``image``.
    """
    check_digest(digest)
    if not public_keys:
        raise VerificationError("no public keys to verify against")
    reasons: list[str] = []
    for payload, signature_b64 in _signature_layers(image):
        try:
            signature = base64.b64decode(signature_b64, validate=True)
        except (binascii.Error, ValueError):
            reasons.append("a signature annotation is not base64")
            continue
        key_index = next(
            (i for i, k in enumerate(public_keys) if signature_valid(k, signature, payload)), None
        )
        if key_index is None:
            reasons.append("a signature does not verify with any trusted key")
            continue
        fields = _payload_fields(payload)
        if fields is None:
            reasons.append("a signed payload is not a cosign simple-signing payload")
            continue
        if fields[0] != digest:
            reasons.append(f"a signature covers {fields[0]}, not {digest}")
            continue
        return VerifiedSignature(
            digest=digest,
            docker_reference=fields[1],
            payload_digest=sha256_digest(payload),
            key_index=key_index,
        )
    detail = "; ".join(dict.fromkeys(reasons)) or "the signature manifest has no signatures"
    raise VerificationError(f"no valid signature for {digest}: {detail}")
