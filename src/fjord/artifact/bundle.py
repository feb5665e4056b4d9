"""Digest-bound signatures in cosign v3's Sigstore bundle format, attached as OCI referrers.

What ``cosign sign --key … --tlog-upload=false`` writes (cosign v3 ``signDigestBundle``) and what
Flux's source-controller and ``cosign verify`` read (``cosign.GetBundles`` →
``verifyImageAttestationsSigstoreBundle``):

* an in-toto v1 **statement** whose only subject is the artifact's manifest digest
  (``{"sha256": "<hex>"}``); a plain signature has predicate type
  ``https://sigstore.dev/cosign/sign/v1`` and an empty predicate, an attestation (provenance)
  has its own predicate type;
* a **DSSE envelope** over it (payload type ``application/vnd.in-toto+json``): the signature is
  ECDSA-SHA256 (DER) over the DSSE pre-authentication encoding ``PAE(type, payload)``;
* a **bundle v0.3** JSON document (``application/vnd.dev.sigstore.bundle.v0.3+json``) holding the
  envelope and, as verification material, only a public-key hint (base64 SHA-256 of the PKIX
  DER key). Key mode needs no transparency-log entry and no timestamp;
* the bundle is the one layer of an **OCI referrer manifest** (``artifactType`` = the bundle
  media type, an empty ``{}`` config of ``application/vnd.oci.empty.v1+json``, ``subject`` = the
  artifact), found through the registry's referrers API or, where the registry has none
  (Distribution 2.8, an OCI layout), the **referrers tag fallback**: an OCI image index tagged
  ``sha256-<hex>`` listing the referrer manifests.

The verifiers compare the statement's subject with the digest they were asked about
(``verify.WithArtifactDigest``), so a bundle copied to another artifact does not verify — unlike
the legacy ``.sig`` payload, whose digest claim Flux never checks (see :mod:`.signing`).

Signing is deterministic (RFC 6979 ECDSA, canonical JSON, no timestamps), so re-signing a digest
with the same key produces the same referrer manifest and changes nothing in the store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fjord.artifact.digest import canonical_json, check_digest, sha256_digest
from fjord.artifact.errors import ArtifactError, VerificationError
from fjord.artifact.oci import OCI_INDEX, OCI_MANIFEST, Image, parse_manifest
from fjord.artifact.signing import PublicKey, sign_payload, signature_valid

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
EMPTY_CONFIG_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
# Annotations cosign puts on its referrer manifests; `cosign tree` and humans read them.
ANNOTATION_BUNDLE_CONTENT = "dev.sigstore.bundle.content"
ANNOTATION_PREDICATE_TYPE = "dev.sigstore.bundle.predicateType"


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle that verified: its statement, predicate type and the index of the signing key."""

    digest: str
    predicate_type: str
    statement: Mapping[str, Any]
    key_index: int

    @property
    def predicate(self) -> Mapping[str, Any]:
        predicate = self.statement.get("predicate")
        return predicate if isinstance(predicate, Mapping) else {}


def referrers_tag(digest: str) -> str:
    """The OCI referrers tag-schema fallback tag for ``digest`` (``sha256-<hex>``)."""
    return check_digest(digest).replace(":", "-", 1)


def public_key_hint(key: PublicKey) -> str:
    """What cosign and sigstore-go put in ``verificationMaterial.publicKey.hint``."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def statement(digest: str, predicate_type: str, predicate: Mapping[str, Any]) -> bytes:
    """An in-toto v1 statement about one manifest digest, as canonical JSON bytes."""
    algorithm, _, hex_digest = check_digest(digest).partition(":")
    return canonical_json(
        {
            "_type": STATEMENT_TYPE,
            "subject": [{"digest": {algorithm: hex_digest}}],
            "predicateType": predicate_type,
            "predicate": dict(predicate),
        }
    )


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: the exact bytes a DSSE signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign_statement(key: ec.EllipticCurvePrivateKey, payload: bytes) -> bytes:
    """A Sigstore bundle v0.3 (DSSE envelope, public-key hint, no tlog) over ``payload``."""
    signature = sign_payload(key, pae(INTOTO_PAYLOAD_TYPE, payload))
    return canonical_json(
        {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"publicKey": {"hint": public_key_hint(key.public_key())}},
            "dsseEnvelope": {
                "payload": base64.b64encode(payload).decode(),
                "payloadType": INTOTO_PAYLOAD_TYPE,
                "signatures": [{"sig": signature}],
            },
        }
    )


def referrer_image(subject: Mapping[str, Any], bundle: bytes, predicate_type: str) -> Image:
    """The referrer manifest carrying ``bundle`` for the artifact described by ``subject``.

    ``subject`` is the artifact's descriptor (media type, digest, size), as the OCI spec wants.
    """
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "config": {
            "mediaType": EMPTY_CONFIG_MEDIA_TYPE,
            "digest": sha256_digest(EMPTY_CONFIG),
            "size": len(EMPTY_CONFIG),
        },
        "layers": [
            {"mediaType": BUNDLE_MEDIA_TYPE, "digest": sha256_digest(bundle), "size": len(bundle)}
        ],
        "subject": {
            "mediaType": str(subject["mediaType"]),
            "digest": check_digest(str(subject["digest"])),
            "size": int(subject["size"]),
        },
        "annotations": {
            ANNOTATION_BUNDLE_CONTENT: "dsse-envelope",
            ANNOTATION_PREDICATE_TYPE: predicate_type,
        },
    }
    return Image(
        manifest=canonical_json(document),
        blobs={sha256_digest(EMPTY_CONFIG): EMPTY_CONFIG, sha256_digest(bundle): bundle},
    )


def referrer_descriptor(image: Image) -> dict[str, Any]:
    """How a referrer manifest is listed in a referrers index (API answer or fallback tag)."""
    document = image.document
    desc: dict[str, Any] = {
        "mediaType": OCI_MANIFEST,
        "digest": image.digest,
        "size": len(image.manifest),
        "artifactType": str(document.get("artifactType", "")),
    }
    if document.get("annotations"):
        desc["annotations"] = dict(document["annotations"])
    return desc


def index_descriptors(index: bytes | None) -> list[dict[str, Any]]:
    """The referrer descriptors of a referrers index; malformed entries are skipped."""
    if not index:
        return []
    document = parse_manifest(index)
    if document.get("mediaType") != OCI_INDEX:
        raise ArtifactError(f"the referrers index is a {document.get('mediaType')}, not an index")
    found = []
    for desc in document.get("manifests") or []:
        if isinstance(desc, dict) and isinstance(desc.get("digest"), str):
            found.append(desc)
    return found


def referrers_index(descriptors: Sequence[Mapping[str, Any]]) -> bytes:
    """A referrers index listing ``descriptors`` once each, sorted by digest (as ggcr does)."""
    unique = {str(d["digest"]): dict(d) for d in descriptors}
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [unique[d] for d in sorted(unique)],
        }
    )


def bundle_layer(image: Image) -> bytes:
    """The bundle a referrer manifest carries; ArtifactError if it is not a bundle referrer."""
    layers = image.document.get("layers") or []
    if len(layers) != 1 or not str(layers[0].get("mediaType", "")).startswith(
        "application/vnd.dev.sigstore.bundle"
    ):
        raise ArtifactError(f"manifest {image.digest} is not a Sigstore bundle referrer")
    blob = image.blobs.get(str(layers[0].get("digest")))
    if blob is None:
        raise ArtifactError(f"manifest {image.digest} lacks its bundle blob")
    return blob


def _envelope(bundle: bytes) -> tuple[bytes, list[bytes]]:
    """(payload, signatures) of a bundle's DSSE envelope; VerificationError if malformed."""
    try:
        document = json.loads(bundle)
        if document.get("mediaType") != BUNDLE_MEDIA_TYPE:
            raise VerificationError(f"not a bundle v0.3: {document.get('mediaType')!r}")
        envelope = document["dsseEnvelope"]
        if envelope.get("payloadType") != INTOTO_PAYLOAD_TYPE:
            raise VerificationError(f"DSSE payload type {envelope.get('payloadType')!r}")
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = [base64.b64decode(s["sig"], validate=True) for s in envelope["signatures"]]
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise VerificationError(f"malformed Sigstore bundle: {exc}") from exc
    return payload, signatures


def _subject_digests(document: Mapping[str, Any]) -> set[str]:
    digests = set()
    for subject in document.get("subject") or []:
        for algorithm, value in (subject.get("digest") or {}).items():
            digests.add(f"{algorithm}:{value}")
    return digests


def verify_bundle(bundle: bytes, digest: str, public_keys: Sequence[PublicKey]) -> VerifiedBundle:
    """Check a bundle as sigstore-go does in key mode: the DSSE signature over the PAE with a
    trusted key, then that ``digest`` is among the statement's subjects."""
    check_digest(digest)
    payload, signatures = _envelope(bundle)
    signed = pae(INTOTO_PAYLOAD_TYPE, payload)
    key_index = next(
        (
            i
            for i, key in enumerate(public_keys)
            for signature in signatures
            if signature_valid(key, signature, signed)
        ),
        None,
    )
    if key_index is None:
        raise VerificationError("the bundle's signature does not verify with any trusted key")
    try:
        document = json.loads(payload)
    except ValueError as exc:
        raise VerificationError(f"the signed statement is not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("_type") != STATEMENT_TYPE:
        raise VerificationError("the signed payload is not an in-toto v1 statement")
    subjects = _subject_digests(document)
    if digest not in subjects:
        raise VerificationError(
            f"the bundle is about {', '.join(sorted(subjects)) or 'nothing'}, not {digest}"
        )
    return VerifiedBundle(
        digest=digest,
        predicate_type=str(document.get("predicateType", "")),
        statement=document,
        key_index=key_index,
    )
