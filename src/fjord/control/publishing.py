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
from fjord.control.stores import open_store, repository_prefix, store_repository
from fjord.control.syncroot import sync_root_artifact
from fjord.releases import Release, publish
from fjord.stores import sign


async def push_release(plane: ControlPlane, org: str, release: Release) -> None:
    prefix = repository_prefix(plane.settings, org)
    async with open_store(plane.settings, org) as store:
        await publish(store, release, key=plane.signing_key, repository_prefix=prefix)


async def move_tag(plane: ControlPlane, org: str, repository: str, digest: str, tag: str) -> None:
    async with open_store(plane.settings, org) as store:
        await store.tag(store_repository(plane.settings, org, repository), digest, tag)


async def publish_sync_root(
    plane: ControlPlane, org_id: int, org: str, environment_id: int, environment: str
) -> str:
    """Publish the sync root listing the placed apps; returns its digest.

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
            unchanged = current is not None and current.digest == artifact.digest
            if unchanged and await store.resolve(repository, flux.SYNC_TAG) == artifact.digest:
                return artifact.digest
            digest = await store.push(repository, artifact)
            await sign(store, repository, digest, plane.signing_key)
            await store.tag(repository, digest, flux.SYNC_TAG)
        async with plane.db.session() as session:
            row = await session.get(SyncRoot, (org_id, environment_id))
            if row is None:
                session.add(
                    SyncRoot(org_id=org_id, environment_id=environment_id, digest=digest, apps=apps)
                )
            else:
                row.digest, row.apps, row.updated_at = digest, apps, utcnow()
        return digest
