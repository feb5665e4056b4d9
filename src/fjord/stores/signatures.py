"""Signing and verifying artifacts through any store, in cosign's legacy ``.sig`` layout."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric import ec

from fjord.artifact import Artifact, PublicKey, VerifiedSignature
from fjord.artifact.digest import check_digest, is_digest
from fjord.artifact.errors import VerificationError
from fjord.artifact.signing import signature_image, signature_tag, verify_signature_image
from fjord.stores.base import NotFoundError, Store, check_repository


async def sign(
    store: Store,
    repository: str,
    digest: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    docker_reference: str | None = None,
) -> str:
    """Sign the manifest ``digest`` in ``repository``; returns the ``.sig`` manifest digest.

    The manifest must already be in the store. Signatures already under the ``.sig`` tag are
    kept (cosign appends too), and signing twice with one key changes nothing.
    """
    check_repository(repository)
    check_digest(digest)
    await store.get_manifest(repository, digest)  # never sign what the store does not hold
    tag = signature_tag(digest)
    existing = None
    if await store.resolve(repository, tag) is not None:
        existing = await store.pull_image(repository, tag)
    image = signature_image(
        digest, docker_reference or store.docker_reference(repository), key, existing
    )
    return await store.push(repository, image, tag=tag)


async def verify(
    store: Store, repository: str, digest: str, public_keys: Sequence[PublicKey]
) -> VerifiedSignature:
    """Check that a trusted key signed ``digest``; raises VerificationError otherwise."""
    check_repository(repository)
    tag = signature_tag(digest)
    try:
        image = await store.pull_image(repository, tag)
    except NotFoundError as exc:
        raise VerificationError(
            f"{store.describe()}: no signature for {repository}@{digest} (tag {tag})"
        ) from exc
    return verify_signature_image(image, digest, public_keys)


async def pull_verified(
    store: Store, repository: str, reference: str, public_keys: Sequence[PublicKey]
) -> Artifact:
    """Resolve ``reference`` to a digest, verify its signature, then pull by that digest.

    Pulling by the verified digest (not the tag again) means a tag moved in between cannot
    substitute unsigned content.
    """
    digest = reference if is_digest(reference) else await store.resolve(repository, reference)
    if digest is None:
        raise NotFoundError(f"{store.describe()}: tag {repository}:{reference} not found")
    await verify(store, repository, digest, public_keys)
    return await store.pull(repository, digest)
