"""Per app, environment and cluster: the infrastructure resources the release declares
(MaskinportenClient, AppCredentials) and whether they are Ready, from what clusters already send.

The control plane holds no cluster credentials, so it never reads the resources' conditions.
It knows which resources a release declares (it rendered them) and learns their health from
Flux's events about the app's Kustomization, which applies them with ``wait: true``:

- Flux reports ``ReconciliationSucceeded`` for a revision only once its health checks passed,
  and kstatus counts one of fjord's infra resources healthy only when its ``Ready`` condition
  is True. So every resource of the release the cluster runs healthy is Ready.
- A failed health check names the resources it waited for (``MaskinportenClient/ns/name
  status: 'Failed'``, with the operator's ``Stalled`` message where kstatus has it), and the
  workloads reporter's events name theirs the same way: such a resource is failed, with the
  message as it came.
- A failure that names another object leaves the resource ``unknown`` (the message is shown);
  anything else about the release is still ``pending``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fjord.control import catalog, states
from fjord.control.models import ClusterApp, Deployment, Release
from fjord.control.plane import ControlPlane
from fjord.control.roles import Actor
from fjord.control.views import (
    AppInfraView,
    InfraClusterView,
    InfraEnvView,
    InfraResourceView,
)
from fjord.render.release import environment_file
from fjord.spec.infra import GROUP, AppCredentialsSpec, MaskinportenClientSpec

INFRA_KINDS = frozenset({MaskinportenClientSpec.kind, AppCredentialsSpec.kind})

# A resource's state as the control plane knows it.
READY = states.READY
FAILED = states.FAILED
PENDING = states.PENDING
UNKNOWN = "unknown"  # the app failed in the cluster for a reason that names another object


@dataclass(frozen=True)
class InfraRef:
    kind: str
    namespace: str
    name: str

    @property
    def path(self) -> str:
        """How Flux and kstatus name the object in their messages."""
        return f"{self.kind}/{self.namespace}/{self.name}"


def declared(manifest: str) -> list[InfraRef]:
    """The infra resources in one environment's rendered manifest (fjord wrote it: trusted)."""
    refs = []
    for doc in yaml.safe_load_all(manifest):
        if not isinstance(doc, dict) or doc.get("kind") not in INFRA_KINDS:
            continue
        if str(doc.get("apiVersion", "")).split("/")[0] != GROUP:
            continue
        metadata = doc.get("metadata") or {}
        refs.append(InfraRef(str(doc["kind"]), str(metadata["namespace"]), str(metadata["name"])))
    return sorted(refs, key=lambda r: r.path)


def verdict(ref: InfraRef, cell: ClusterApp | None, digest: str) -> InfraResourceView:
    """What a cluster's last report about the app says about one of its resources (pure)."""

    def view(state: str, message: str | None = None) -> InfraResourceView:
        return InfraResourceView(
            kind=ref.kind, namespace=ref.namespace, name=ref.name, state=state, message=message
        )

    if cell is None:
        return view(PENDING, "the cluster has not reported this app yet")
    if cell.ready is False:
        if ref.path in (cell.message or ""):
            return view(FAILED, cell.message)
        return view(UNKNOWN, f"the app failed here: {cell.message}")
    if cell.ready and cell.applied_digest == digest:
        return view(READY)
    return view(PENDING, "waiting for Flux to apply this release and pass its health checks")


# Releases never change: their declared resources per environment are kept here, so a page
# that polls does not load and parse the rendered files again.
_DECLARED: OrderedDict[tuple[int, str], list[InfraRef]] = OrderedDict()
_DECLARED_MAX = 2048


async def _declared_in(
    session: AsyncSession, release: Release, app: str, environment: str
) -> list[InfraRef]:
    key = (release.id, environment)
    if key in _DECLARED:
        _DECLARED.move_to_end(key)
        return _DECLARED[key]
    files: dict[str, Any] = (
        await session.scalars(select(Release.files).where(Release.id == release.id))
    ).one()
    manifest = files.get(environment_file(environment, app))
    refs = declared(str(manifest)) if manifest is not None else []
    _DECLARED[key] = refs
    if len(_DECLARED) > _DECLARED_MAX:
        _DECLARED.popitem(last=False)
    return refs


async def _target(session: AsyncSession, app_id: int, environment_id: int) -> Release | None:
    """The release the environment's latest deployment points at (None: none, or undeployed)."""
    latest = (
        await session.scalars(
            select(Deployment)
            .where(Deployment.app_id == app_id, Deployment.environment_id == environment_id)
            .order_by(Deployment.id.desc())
            .limit(1)
        )
    ).one_or_none()
    if latest is None or latest.kind == states.UNDEPLOY or latest.release_id is None:
        return None
    return await session.get(Release, latest.release_id)


async def app_infra(plane: ControlPlane, actor: Actor, full_name: str) -> AppInfraView:
    """Per environment and cluster, the state of every infra resource the app's release declares."""
    org_name, app_name = catalog.split_app(full_name)
    actor.require(org_name)
    async with plane.db.session() as session:
        ref = await catalog.app(session, org_name, app_name)
        cells = {
            r.cluster_id: r
            for r in (
                await session.scalars(select(ClusterApp).where(ClusterApp.app_id == ref.app.id))
            ).all()
        }
        envs = []
        for env in await catalog.environments(session):
            release = await _target(session, ref.app.id, env.id)
            refs = await _declared_in(session, release, app_name, env.name) if release else []
            clusters = []
            for cluster in await catalog.clusters(session, ref.org.id, env.id):
                cell = cells.get(cluster.id)
                clusters.append(
                    InfraClusterView(
                        cluster=cluster.id,
                        revision=cell.applied_revision if cell else None,
                        resources=[verdict(r, cell, release.digest) for r in refs]
                        if release
                        else [],
                        updated_at=cell.updated_at if cell else None,
                    )
                )
            envs.append(
                InfraEnvView(
                    environment=env.name,
                    digest=release.digest if release else None,
                    clusters=clusters,
                )
            )
    return AppInfraView(org=org_name, app=app_name, environments=envs)
