"""Sigstore bundles and SLSA provenance: the formats cosign and Flux read, without a store."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from fjord.artifact import VerificationError
from fjord.artifact.bundle import (
    BUNDLE_MEDIA_TYPE,
    COSIGN_SIGN_PREDICATE,
    INTOTO_PAYLOAD_TYPE,
    bundle_layer,
    index_descriptors,
    pae,
    public_key_hint,
    referrer_descriptor,
    referrer_image,
    referrers_index,
    referrers_tag,
    sign_statement,
    statement,
    verify_bundle,
)
from fjord.artifact.provenance import (
    SLSA_PROVENANCE_V1,
    BuildFacts,
    Input,
    git_commit,
    predicate,
    summarize,
)

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_pae_matches_the_dsse_specification_example() -> None:
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_statement_names_only_the_digest_as_cosign_sign_does() -> None:
    document = json.loads(statement(DIGEST, COSIGN_SIGN_PREDICATE, {}))
    assert document == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": "ab" * 32}}],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }


def test_bundle_is_v03_dsse_with_a_key_hint_and_a_signature_over_the_pae(
    key: ec.EllipticCurvePrivateKey,
) -> None:
    payload = statement(DIGEST, COSIGN_SIGN_PREDICATE, {})
    bundle = json.loads(sign_statement(key, payload))
    assert bundle["mediaType"] == BUNDLE_MEDIA_TYPE
    assert bundle["verificationMaterial"] == {
        "publicKey": {"hint": public_key_hint(key.public_key())}
    }
    envelope = bundle["dsseEnvelope"]
    assert envelope["payloadType"] == INTOTO_PAYLOAD_TYPE
    assert base64.b64decode(envelope["payload"]) == payload
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    key.public_key().verify(signature, pae(INTOTO_PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    # Deterministic: the same statement and key give the same bytes.
    assert sign_statement(key, payload) == sign_statement(key, payload)


def test_verify_bundle_checks_key_and_subject(key: ec.EllipticCurvePrivateKey) -> None:
    bundle = sign_statement(key, statement(DIGEST, COSIGN_SIGN_PREDICATE, {}))
    verified = verify_bundle(bundle, DIGEST, [key.public_key()])
    assert verified.predicate_type == COSIGN_SIGN_PREDICATE
    with pytest.raises(VerificationError, match=f"about {DIGEST}, not {OTHER}"):
        verify_bundle(bundle, OTHER, [key.public_key()])
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(VerificationError, match="does not verify"):
        verify_bundle(bundle, DIGEST, [stranger])


def test_a_bundle_whose_statement_was_edited_does_not_verify(
    key: ec.EllipticCurvePrivateKey,
) -> None:
    bundle = json.loads(sign_statement(key, statement(DIGEST, COSIGN_SIGN_PREDICATE, {})))
    forged = statement(OTHER, COSIGN_SIGN_PREDICATE, {})
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(forged).decode()
    with pytest.raises(VerificationError, match="does not verify"):
        verify_bundle(json.dumps(bundle).encode(), OTHER, [key.public_key()])


@pytest.mark.parametrize(
    "garbage",
    [b"", b"[]", b'{"mediaType": "x"}', b'{"mediaType": "%s"}' % BUNDLE_MEDIA_TYPE.encode()],
)
def test_malformed_bundles_are_verification_errors(
    garbage: bytes, key: ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(VerificationError):
        verify_bundle(garbage, DIGEST, [key.public_key()])


def test_referrer_manifest_and_fallback_index(key: ec.EllipticCurvePrivateKey) -> None:
    bundle = sign_statement(key, statement(DIGEST, COSIGN_SIGN_PREDICATE, {}))
    subject = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": DIGEST,
        "size": 9,
    }
    image = referrer_image(subject, bundle, COSIGN_SIGN_PREDICATE)
    image.check_complete()
    document = image.document
    assert document["artifactType"] == BUNDLE_MEDIA_TYPE
    assert document["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert document["subject"] == subject
    assert bundle_layer(image) == bundle
    desc = referrer_descriptor(image)
    index = referrers_index([desc, desc])
    assert index_descriptors(index) == [desc]
    assert referrers_tag(DIGEST) == "sha256-" + "ab" * 32


FACTS = BuildFacts(
    org="ttd",
    app="app1",
    source="/src/app1",
    revision="main@sha1:" + "12" * 20,
    environments=("tt02",),
    dynamic_version=7,
    builder="fjord/1.2.3",
    inputs=(Input("platform-config", "sha256:" + "ef" * 32),),
)


def test_provenance_predicate_round_trips() -> None:
    document = predicate(FACTS)
    assert document["runDetails"]["builder"] == {
        "id": "https://fjord.dev/builder",
        "version": {"fjord": "1.2.3"},
    }
    dependencies = document["buildDefinition"]["resolvedDependencies"]
    assert {"uri": "git+/src/app1", "digest": {"gitCommit": "12" * 20}} in dependencies
    summary = summarize(document)
    assert summary.commit == "12" * 20
    assert summary.dynamic_version == 7
    assert summary.app == "ttd/app1"
    assert Input("platform-config", "sha256:" + "ef" * 32) in summary.inputs
    assert SLSA_PROVENANCE_V1 == "https://slsa.dev/provenance/v1"


def test_git_commit_only_for_git_revisions() -> None:
    assert git_commit("main@sha1:" + "a" * 40) == "a" * 40
    assert git_commit("sha256:" + "a" * 64) is None
    assert summarize({}).commit is None
