"""Orgs, environments and clusters, kept in step with the platform config; lookups by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fjord.control.errors import NotFoundError
from fjord.control.models import App, AuditEntry, Cluster, Environment, Org
from fjord.spec import PlatformConfig


def cluster_id(org: str, environment: str, name: str) -> str:
    return f"{org}.{environment}.{name}"


async def sync_platform(session: AsyncSession, platform: PlatformConfig) -> None:
    """Insert what the platform config adds, re-order environments, deactivate gone clusters.

    Nothing is deleted: history refers to these rows. Safe to run concurrently in several
    processes (a lost insert race is ignored).
    """
    orgs = {o.name: o for o in (await session.scalars(select(Org))).all()}
    for name in platform.orgs:
        if name not in orgs:
            orgs[name] = await _insert(session, Org(name=name), Org, Org.name == name)
    envs = {e.name: e for e in (await session.scalars(select(Environment))).all()}
    for position, environment in enumerate(platform.environments):
        row = envs.get(environment.name)
        if row is None:
            envs[environment.name] = await _insert(
                session,
                Environment(name=environment.name, position=position),
                Environment,
                Environment.name == environment.name,
            )
        elif row.position != position:
            row.position = position
    wanted: set[str] = set()
    for org_name, org in platform.orgs.items():
        for env_name, clusters in org.clusters.items():
            for cluster in clusters:
                cid = cluster_id(org_name, env_name, cluster.name)
                wanted.add(cid)
                existing = await session.get(Cluster, cid)
                if existing is None:
                    await _insert(
                        session,
                        Cluster(
                            id=cid,
                            org_id=orgs[org_name].id,
                            environment_id=envs[env_name].id,
                            name=cluster.name,
                        ),
                        Cluster,
                        Cluster.id == cid,
                    )
                elif not existing.active:
                    existing.active = True
    await session.execute(update(Cluster).where(Cluster.id.not_in(wanted)).values(active=False))


POD_SECURITY_ACTION = "platform.pod-security"
PLATFORM_CONFIG_ACTOR = "platform-config"
_DEFAULT_POD_SECURITY = {"level": "restricted", "reason": "the platform default"}


async def audit_pod_security(session: AsyncSession, platform: PlatformConfig) -> None:
    """Record every change of a Pod Security exception (new, changed or removed).

    The platform config is a file, not an API call, so the control plane compares what it loads
    with the last recorded state of each target (``org`` or ``org/app``) and writes an entry for
    each difference; starting twice with the same file records nothing new.
    """
    wanted = {
        f"{e.org}/{e.app}" if e.app else e.org: {"level": e.level, "reason": e.reason}
        for e in platform.security.pod_security_exceptions
    }
    rows = await session.scalars(
        select(AuditEntry).where(AuditEntry.action == POD_SECURITY_ACTION).order_by(AuditEntry.id)
    )
    recorded = {row.target: row.detail for row in rows}
    for target in sorted(set(wanted) | set(recorded)):
        detail = wanted.get(target, _DEFAULT_POD_SECURITY)
        if recorded.get(target, _DEFAULT_POD_SECURITY) != detail:
            session.add(
                AuditEntry(
                    actor=PLATFORM_CONFIG_ACTOR,
                    org=target.split("/", 1)[0],
                    action=POD_SECURITY_ACTION,
                    target=target,
                    detail=detail,
                )
            )


T = TypeVar("T")


async def _insert(session: AsyncSession, row: T, model: type[T], where: object) -> T:
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return (await session.scalars(select(model).where(where))).one()  # type: ignore[arg-type]
    return row


@dataclass(frozen=True)
class AppRef:
    org: Org
    app: App

    @property
    def full_name(self) -> str:
        return f"{self.org.name}/{self.app.name}"


async def org(session: AsyncSession, name: str) -> Org:
    row = (await session.scalars(select(Org).where(Org.name == name))).one_or_none()
    if row is None:
        raise NotFoundError(f"unknown org {name!r}")
    return row


async def environment(session: AsyncSession, name: str) -> Environment:
    row = (await session.scalars(select(Environment).where(Environment.name == name))).one_or_none()
    if row is None:
        known = await session.scalars(select(Environment.name).order_by(Environment.position))
        raise NotFoundError(
            f"unknown environment {name!r}", hint=f"known: {', '.join(known.all())}"
        )
    return row


async def environments(session: AsyncSession) -> list[Environment]:
    return list((await session.scalars(select(Environment).order_by(Environment.position))).all())


async def app(session: AsyncSession, org_name: str, app_name: str) -> AppRef:
    org_row = await org(session, org_name)
    row = (
        await session.scalars(select(App).where(App.org_id == org_row.id, App.name == app_name))
    ).one_or_none()
    if row is None:
        raise NotFoundError(
            f"unknown app {org_name}/{app_name}",
            hint=f"register it with: fjord app create {org_name}/{app_name} --repo CLONE_URL",
        )
    return AppRef(org_row, row)


async def clusters(session: AsyncSession, org_id: int, environment_id: int) -> list[Cluster]:
    return list(
        (
            await session.scalars(
                select(Cluster)
                .where(
                    Cluster.org_id == org_id,
                    Cluster.environment_id == environment_id,
                    Cluster.active.is_(True),
                )
                .order_by(Cluster.name)
            )
        ).all()
    )


def split_app(full_name: str) -> tuple[str, str]:
    org_name, sep, app_name = full_name.partition("/")
    if not sep or not org_name or not app_name or "/" in app_name:
        raise NotFoundError(f"app names are org/app, got {full_name!r}")
    return org_name, app_name
