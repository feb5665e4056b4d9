"""Apps and their dynamic config: register an app, read it, version its config."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fjord.control import audit, catalog
from fjord.control.errors import (
    ConflictError,
    InvalidError,
    NotFoundError,
    PreconditionRequiredError,
    StaleVersionError,
)
from fjord.control.models import App, ConfigVersion, Org
from fjord.control.plane import ControlPlane
from fjord.control.roles import Actor, Role
from fjord.control.views import AppView, ConfigVersionView
from fjord.spec import DynamicConfig, SpecError, load_app_spec


def _view(org: str, row: App) -> AppView:
    return AppView(org=org, app=row.name, source=row.source, created_at=row.created_at)


async def create_app(plane: ControlPlane, actor: Actor, full_name: str, source: str) -> AppView:
    """Register ``org/app`` whose source is the directory ``source`` (with a ``fjord.yaml``)."""
    org_name, app_name = catalog.split_app(full_name)
    actor.require(org_name, Role.developer)
    async with plane.db.session() as session:
        await catalog.org(session, org_name)  # an unknown org is the first thing to say
    directory = await asyncio.to_thread(Path(source).resolve)
    try:
        spec = await asyncio.to_thread(load_app_spec, directory)
    except (SpecError, OSError) as exc:
        raise InvalidError(f"{directory}: not a valid app source: {exc}") from exc
    if (spec.org, spec.app) != (org_name, app_name):
        raise InvalidError(
            f"{directory}/fjord.yaml declares {spec.org}/{spec.app}, not {full_name}"
        )
    try:
        async with plane.db.session() as session:
            org = await catalog.org(session, org_name)
            row = App(org_id=org.id, name=app_name, source=str(directory))
            session.add(row)
            await session.flush()
            audit.record(session, actor, "app.create", full_name, org=org_name, source=row.source)
    except IntegrityError as exc:
        raise ConflictError(f"app {full_name} already exists") from exc
    return _view(org_name, row)


async def list_apps(plane: ControlPlane, actor: Actor, org: str | None = None) -> list[AppView]:
    async with plane.db.session() as session:
        query = select(Org.name, App).join(Org, App.org_id == Org.id).order_by(Org.name, App.name)
        if org is not None:
            actor.require(org)
            query = query.where(Org.name == org)
        rows = (await session.execute(query)).all()
    return [_view(o, a) for o, a in rows if actor.role_in(o) is not None]


async def get_app(plane: ControlPlane, actor: Actor, full_name: str) -> AppView:
    org_name, app_name = catalog.split_app(full_name)
    actor.require(org_name)
    async with plane.db.session() as session:
        ref = await catalog.app(session, org_name, app_name)
    return _view(org_name, ref.app)


def _config_view(row: ConfigVersion) -> ConfigVersionView:
    return ConfigVersionView(
        version=row.version,
        values=row.values,
        author=row.author,
        reason=row.reason,
        created_at=row.created_at,
    )


async def set_config(
    plane: ControlPlane,
    actor: Actor,
    full_name: str,
    values: dict[str, Any],
    reason: str,
    expected_version: int | None = None,
    *,
    version_required: bool = False,
) -> ConfigVersionView:
    """Store a new version of the app's dynamic config; every version says who and why.

    ``expected_version`` is the version the change is based on (0: the app has none yet). The
    write is a compare-and-set: it becomes ``expected_version + 1`` only if that is still the
    latest; otherwise :class:`StaleVersionError` names the current version. The unique key on
    (app, version) decides between concurrent writers, so no lock is held and none waits.
    ``None`` (for the control plane's own writes) appends after whatever is latest, unless
    ``version_required`` (every API write): then it is :class:`PreconditionRequiredError`, said
    only to a caller allowed to write.
    """
    org_name, app_name = catalog.split_app(full_name)
    actor.require(org_name, Role.developer)
    if expected_version is None and version_required:
        raise PreconditionRequiredError(
            "a config write must say which version it is based on",
            'send If-Match: "<version>" or expected_version: <version> with the version you '
            "read (GET …/config answers it, and its ETag); 0 when the app has no config yet",
        )
    if not reason.strip():
        raise InvalidError("say why the config changes (--reason)")
    try:
        DynamicConfig(version=0, values=values)
    except SpecError as exc:
        raise InvalidError(str(exc)) from exc
    attempts = 1 if expected_version is not None else _APPEND_ATTEMPTS
    for _ in range(attempts):
        try:
            async with plane.db.session() as session:
                ref = await catalog.app(session, org_name, app_name)
                latest = await _latest_version(session, ref.app.id)
                base = latest if expected_version is None else expected_version
                if base != latest:
                    raise _stale(full_name, expected=base, current=latest)
                row = ConfigVersion(
                    app_id=ref.app.id,
                    version=base + 1,
                    values=values,
                    author=actor.name,
                    reason=reason,
                )
                session.add(row)
                await session.flush()
                audit.record(
                    session,
                    actor,
                    "config.set",
                    full_name,
                    org=org_name,
                    version=row.version,
                    reason=reason,
                )
            return _config_view(row)
        except IntegrityError:
            pass  # another writer took version base + 1 first
    async with plane.db.session() as session:
        ref = await catalog.app(session, org_name, app_name)
        current = await _latest_version(session, ref.app.id)
    raise _stale(full_name, expected=expected_version, current=current)


# Appends without an expected version retry a few times when another writer wins the race; the
# last loss is still a 409, never a 500.
_APPEND_ATTEMPTS = 5


async def _latest_version(session: AsyncSession, app_id: int) -> int:
    latest = await session.scalar(
        select(func.max(ConfigVersion.version)).where(ConfigVersion.app_id == app_id)
    )
    return int(latest or 0)


def _stale(full_name: str, *, expected: int | None, current: int) -> StaleVersionError:
    based = f"based on version {expected}" if expected is not None else "lost the race"
    return StaleVersionError(
        f"{full_name}'s dynamic config is at version {current}; this write was {based}",
        f"nothing was written: read version {current} (fjord config show {full_name}), apply "
        f"your change to it and write again expecting version {current}",
        current_version=current,
    )


async def config_versions(
    plane: ControlPlane, actor: Actor, full_name: str
) -> list[ConfigVersionView]:
    org_name, app_name = catalog.split_app(full_name)
    actor.require(org_name)
    async with plane.db.session() as session:
        ref = await catalog.app(session, org_name, app_name)
        rows = (
            await session.scalars(
                select(ConfigVersion)
                .where(ConfigVersion.app_id == ref.app.id)
                .order_by(ConfigVersion.version)
            )
        ).all()
    return [_config_view(r) for r in rows]


async def get_config(
    plane: ControlPlane, actor: Actor, full_name: str, version: int | None = None
) -> ConfigVersionView | None:
    """A version of the config (the latest by default); None if none was ever set."""
    versions = await config_versions(plane, actor, full_name)
    if version is None:
        return versions[-1] if versions else None
    for row in versions:
        if row.version == version:
            return row
    raise NotFoundError(f"{full_name} has no config version {version}")
