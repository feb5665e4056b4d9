"""Signing, attesting and verifying artifacts through any store.

Two formats (docs/signing.md):

* **Sigstore bundles** (:mod:`fjord.artifact.bundle`), digest-bound, attached as OCI referrers:
  the signature (predicate ``https://sigstore.dev/cosign/sign/v1``) and the SLSA provenance.
  Written always; Flux (2.8+) and ``cosign verify`` look for them first.
* **legacy ``.sig``** (:mod:`fjord.artifact.signing`), written only during the migration window
  and only with the *legacy* key: Flux never checks its digest claim, so once the window closes
  the legacy key leaves every trust list and a copied ``.sig`` verifies nowhere.

fjord's own verifier checks the digest in both formats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from fjord.artifact import Artifact, PublicKey, VerifiedSignature
from fjord.artifact.bundle import (
    BUNDLE_MEDIA_TYPE,
    COSIGN_SIGN_PREDICATE,
    VerifiedBundle,
    bundle_layer,
    referrer_descriptor,
    referrer_image,
    referrers_index,
    referrers_tag,
    sign_statement,
    statement,
    verify_bundle,
)
from fjord.artifact.digest import canonical_json, check_digest, is_digest, sha256_digest
from fjord.artifact.errors import ArtifactError, VerificationError
from fjord.artifact.oci import OCI_MANIFEST, parse_manifest
from fjord.artifact.provenance import SLSA_PROVENANCE_V1, BuildFacts, predicate
from fjord.artifact.signing import signature_image, signature_tag, verify_signature_image
from fjord.stores.base import NotFoundError, Store, check_repository
from fjord.stores.concurrency import both


@dataclass(frozen=True)
class Signer:
    """The keys a publisher signs with, and in which formats."""

    key: ec.EllipticCurvePrivateKey  # signs bundles (the key clusters trust after the window)
    legacy_key: ec.EllipticCurvePrivateKey | None = None  # set: also write a legacy `.sig`
    bundles: bool = True  # False only in the benchmark, to measure what bundles cost


@dataclass(frozen=True)
class Trust:
    """The public keys a verifier accepts: bundles by ``keys``, legacy `.sig` by ``legacy_keys``
    (empty once the migration window is closed)."""

    keys: Sequence[PublicKey]
    legacy_keys: Sequence[PublicKey] = ()


@dataclass(frozen=True)
class Signed:
    """Manifest digests of what signing wrote (None: that format was not written)."""

    bundle: str | None
    legacy: str | None
    provenance: str | None = None


# ---- writing ---------------------------------------------------------------------------------


async def _subject(store: Store, repository: str, digest: str) -> dict[str, Any]:
    manifest = await store.get_manifest(repository, digest)  # never sign what is not there
    return subject_descriptor(manifest)


def subject_descriptor(manifest: bytes) -> dict[str, Any]:
    """The OCI descriptor of a manifest, as a referrer's ``subject`` names it."""
    media_type = str(parse_manifest(manifest).get("mediaType") or OCI_MANIFEST)
    return {"mediaType": media_type, "digest": sha256_digest(manifest), "size": len(manifest)}


async def attach_bundles(
    store: Store,
    repository: str,
    subject: Mapping[str, Any],
    key: ec.EllipticCurvePrivateKey,
    statements: Sequence[tuple[str, Mapping[str, Any]]],
) -> list[str]:
    """Sign in-toto statements (predicate type, predicate) about ``subject`` and attach them.

    Returns the referrer manifests' digests. The referrer manifests are pushed first; where the
    store has no referrers API, the fallback index under ``sha256-<hex>`` then lists them too,
    updated once for all of them (read, add, write: one writer per subject at a time, which the
    control plane's per-app and per-sync-root locks already give).
    """
    check_repository(repository)
    digest = check_digest(str(subject["digest"]))
    images = [
        referrer_image(subject, sign_statement(key, statement(digest, kind, body)), kind)
        for kind, body in statements
    ]
    # The referrers go up side by side, and meanwhile the fallback index (if the store needs
    # one) is read: it is only written once every referrer it will list is stored.
    referrers, listed = await both(
        store.push_all(repository, images),
        _fallback_listing(store, repository, digest),
    )
    if listed is not None:
        known = {d.get("digest") for d in listed}
        new = [referrer_descriptor(i) for i in images if i.digest not in known]
        if new:
            index = referrers_index([*listed, *new])
            await store.put_index(
                repository, index, tag=referrers_tag(digest), pushed=set(referrers)
            )
    return referrers


async def _fallback_listing(
    store: Store, repository: str, digest: str
) -> list[dict[str, Any]] | None:
    """What the fallback index lists for ``digest``; None if the store has the referrers API."""
    if await store.referrers_api(repository, digest) is not None:
        return None
    return await store.fallback_referrers(repository, digest)


async def attach_bundle(
    store: Store,
    repository: str,
    digest: str,
    key: ec.EllipticCurvePrivateKey,
    predicate_type: str,
    predicate_body: Mapping[str, Any],
) -> str:
    """Sign one in-toto statement about ``digest`` and attach it; returns the referrer digest."""
    subject = await _subject(store, repository, check_digest(digest))
    return (
        await attach_bundles(store, repository, subject, key, [(predicate_type, predicate_body)])
    )[0]


async def sign_legacy(
    store: Store,
    repository: str,
    digest: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    docker_reference: str | None = None,
) -> str:
    """Sign ``digest`` in the legacy layout; returns the ``.sig`` manifest digest.

    Signatures already under the ``.sig`` tag are kept (cosign appends too), and signing twice
    with one key changes nothing.
    """
    check_repository(repository)
    check_digest(digest)
    await store.get_manifest(repository, digest)
    tag = signature_tag(digest)
    existing = None
    if await store.resolve(repository, tag) is not None:
        existing = await store.pull_image(repository, tag)
    image = signature_image(
        digest, docker_reference or store.docker_reference(repository), key, existing
    )
    return await store.push(repository, image, tag=tag)


async def sign(
    store: Store,
    repository: str,
    digest: str,
    signer: Signer,
    *,
    provenance_of: BuildFacts | None = None,
    manifest: bytes | None = None,
) -> Signed:
    """Sign ``digest`` in every format ``signer`` asks for, with its provenance if given.

    ``manifest`` (the artifact's bytes, when the caller just pushed them) saves fetching it.
    """
    check_repository(repository)
    check_digest(digest)
    # The two formats share nothing in the store (referrers and their index vs. the ``.sig``
    # tag), so during a migration window they are written side by side.
    referrers, legacy = await both(
        _sign_bundles(store, repository, digest, signer, provenance_of, manifest),
        _sign_legacy_if_asked(store, repository, digest, signer),
    )
    return Signed(
        bundle=referrers[0] if referrers else None,
        legacy=legacy,
        provenance=referrers[1] if referrers and provenance_of is not None else None,
    )


async def _sign_bundles(
    store: Store,
    repository: str,
    digest: str,
    signer: Signer,
    provenance_of: BuildFacts | None,
    manifest: bytes | None,
) -> list[str]:
    """The signature bundle and, with ``provenance_of``, the provenance; [] without bundles."""
    if not signer.bundles:
        return []
    subject = (
        subject_descriptor(manifest)
        if manifest is not None and sha256_digest(manifest) == digest
        else await _subject(store, repository, digest)
    )
    statements: list[tuple[str, Mapping[str, Any]]] = [(COSIGN_SIGN_PREDICATE, {})]
    if provenance_of is not None:
        statements.append((SLSA_PROVENANCE_V1, predicate(provenance_of)))
    return await attach_bundles(store, repository, subject, signer.key, statements)


async def _sign_legacy_if_asked(
    store: Store, repository: str, digest: str, signer: Signer
) -> str | None:
    if signer.legacy_key is None:
        return None
    return await sign_legacy(store, repository, digest, signer.legacy_key)


async def attest_provenance(
    store: Store, repository: str, digest: str, key: ec.EllipticCurvePrivateKey, facts: BuildFacts
) -> str:
    """Attach the signed SLSA provenance of a release; returns the referrer's digest."""
    return await attach_bundle(store, repository, digest, key, SLSA_PROVENANCE_V1, predicate(facts))


# ---- verifying -------------------------------------------------------------------------------


async def _bundles(store: Store, repository: str, digest: str) -> list[bytes]:
    found = []
    for desc in await store.referrers(repository, digest):
        if desc.get("artifactType") not in (None, "", BUNDLE_MEDIA_TYPE):
            continue
        try:
            found.append(bundle_layer(await store.pull_image(repository, str(desc["digest"]))))
        except (ArtifactError, NotFoundError):
            continue  # not a bundle referrer, or gone: like cosign, skip it
    return found


async def verify_bundles(
    store: Store,
    repository: str,
    digest: str,
    public_keys: Sequence[PublicKey],
    predicate_type: str = COSIGN_SIGN_PREDICATE,
) -> VerifiedBundle:
    """The first attached bundle of ``predicate_type`` that a trusted key signed for ``digest``."""
    check_repository(repository)
    check_digest(digest)
    if not public_keys:
        raise VerificationError("no public keys to verify bundles against")
    reasons: list[str] = []
    for bundle in await _bundles(store, repository, digest):
        try:
            verified = verify_bundle(bundle, digest, public_keys)
        except VerificationError as exc:
            reasons.append(str(exc))
            continue
        if verified.predicate_type == predicate_type:
            return verified
        reasons.append(f"a bundle has predicate type {verified.predicate_type}")
    detail = "; ".join(dict.fromkeys(reasons)) or "no Sigstore bundle is attached"
    raise VerificationError(
        f"{store.describe()}: no valid {predicate_type} bundle for {repository}@{digest}: {detail}"
    )


async def verify_legacy(
    store: Store, repository: str, digest: str, public_keys: Sequence[PublicKey]
) -> VerifiedSignature:
    """Check a legacy ``.sig`` (signature and digest claim); raises VerificationError."""
    check_repository(repository)
    tag = signature_tag(digest)
    try:
        image = await store.pull_image(repository, tag)
    except NotFoundError as exc:
        raise VerificationError(
            f"{store.describe()}: no signature for {repository}@{digest} (tag {tag})"
        ) from exc
    return verify_signature_image(image, digest, public_keys)


async def verify(store: Store, repository: str, digest: str, trust: Trust) -> VerifiedSignature:
    """A bundle signature by a trusted key; during the migration window, else a legacy one."""
    try:
        verified = await verify_bundles(store, repository, digest, trust.keys)
    except VerificationError as bundle_error:
        if not trust.legacy_keys:
            raise
        try:
            return await verify_legacy(store, repository, digest, trust.legacy_keys)
        except VerificationError as legacy_error:
            raise VerificationError(f"{bundle_error}; legacy: {legacy_error}") from legacy_error
    return VerifiedSignature(
        digest=digest,
        docker_reference="",
        payload_digest=sha256_digest(canonical_json(verified.statement)),
        key_index=verified.key_index,
        format="bundle",
    )


async def provenance(
    store: Store, repository: str, digest: str, public_keys: Sequence[PublicKey]
) -> VerifiedBundle:
    """The verified SLSA provenance attached to ``digest``."""
    return await verify_bundles(store, repository, digest, public_keys, SLSA_PROVENANCE_V1)


async def pull_verified(store: Store, repository: str, reference: str, trust: Trust) -> Artifact:
    """Resolve ``reference`` to a digest, verify its signature, then pull by that digest.

    Pulling by the verified digest (not the tag again) means a tag moved in between cannot
    substitute unsigned content.
    """
    digest = reference if is_digest(reference) else await store.resolve(repository, reference)
    if digest is None:
        raise NotFoundError(f"{store.describe()}: tag {repository}:{reference} not found")
    await verify(store, repository, digest, trust)
    return await store.pull(repository, digest)
