"""The store-facing steps of a deployment: push + sign, sync roots, tags.

Order matters and is the same everywhere: the release is pushed and signed first (no tag
moves), then the sync root lists the app, and only then the environment tag moves. A store
failure at any step leaves every tag where it was before that step.
"""

from __future__ import annotations

from sqlalchemy import select

from fjord.control import flux, locks
from fjord.control.models import App, Placement, SyncRoot, utcnow
from fjord.control.plane import ControlPlane
from fjord.control.stores import is_bucket, open_store, repository_prefix, store_repository
from fjord.control.syncroot import sync_root_artifact
from fjord.releases import Release, publish
from fjord.stores import Store, StoreError, sign


async def push_release(plane: ControlPlane, org: str, release: Release) -> None:
    prefix = repository_prefix(plane.settings, org)
    async with open_store(plane.settings, org) as store:
        await publish(store, release, signer=plane.signer, repository_prefix=prefix)


async def move_tag(plane: ControlPlane, org: str, repository: str, digest: str, tag: str) -> None:
    async with open_store(plane.settings, org) as store:
        await store.tag(store_repository(plane.settings, org, repository), digest, tag)


async def _reported_revision(
    plane: ControlPlane, org: str, store: Store, repository: str, digest: str
) -> str | None:
    """What the clusters' root Kustomization will report once it applies ``digest``: the digest
    itself (an OCIRepository's ``current@sha256:…``) or the Bucket revision of its tree; None
    if that tree does not hold ``digest`` (missing or replaced)."""
    if not is_bucket(plane.settings, org):
        return digest
    from fjord.stores.azure import AzureBlobStore  # the Azure SDK is slow to import

    assert isinstance(store, AzureBlobStore)
    state = await store.tree_state(repository, flux.SYNC_TAG)
    return state.revision if state is not None and state.digest == digest else None


async def publish_sync_root(
    plane: ControlPlane, org_id: int, org: str, environment_id: int, environment: str
) -> str:
    """Publish the sync root listing the placed apps; returns what the clusters will report
    when they apply it (its digest, or for Bucket sources the revision of its tree).

    Serialised per org and environment, and computed from the committed placements inside the
    lock, so two apps deploying at once can never publish a list missing either of them.
    """
    async with locks.hold(
        plane.db,
        f"syncroot:{org}/{environment}",
        plane.replica,
        lease=plane.settings.lease_seconds,
    ):
        async with plane.db.session() as session:
            apps = list(
                (
                    await session.scalars(
                        select(App.name)
                        .join(Placement, Placement.app_id == App.id)
                        .where(App.org_id == org_id, Placement.environment_id == environment_id)
                        .order_by(App.name)
                    )
                ).all()
            )
            current = await session.get(SyncRoot, (org_id, environment_id))
        artifact = sync_root_artifact(plane.settings, org, environment, apps)
        repository = store_repository(plane.settings, org, flux.sync_repository(org, environment))
        async with open_store(plane.settings, org) as store:
            # Unchanged list: publish nothing new, as long as the tag is really there (a crash
            # may have stopped us between push and tag).
            # (For Bucket sources the tag's tree must hold it too.)
            unchanged = current is not None and current.digest == artifact.digest
            if unchanged and await store.resolve(repository, flux.SYNC_TAG) == artifact.digest:
                # Signing is idempotent; this adds what a sync root published before an upgrade
                # lacks (a bundle), so closing the legacy-signature window needs no new list.
                await sign(store, repository, artifact.digest, plane.signer)
                same = await _reported_revision(plane, org, store, repository, artifact.digest)
                if same is not None:
                    return same
            digest = await store.push(repository, artifact)
            await sign(store, repository, digest, plane.signer)
            await store.tag(repository, digest, flux.SYNC_TAG)
            reported = await _reported_revision(plane, org, store, repository, digest)
            if reported is None:
                raise StoreError(
                    f"{store.describe()}: the tree of {repository}:{flux.SYNC_TAG} does not hold "
                    f"{digest} right after tagging it (another writer?)"
                )
        async with plane.db.session() as session:
            row = await session.get(SyncRoot, (org_id, environment_id))
            if row is None:
                session.add(
                    SyncRoot(org_id=org_id, environment_id=environment_id, digest=digest, apps=apps)
                )
            else:
                row.digest, row.apps, row.updated_at = digest, apps, utcnow()
        return reported
