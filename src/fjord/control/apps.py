"""Apps and their dynamic config: register an app, read it, version its config."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fjord.control import audit, catalog, webhooks
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
from fjord.control.secrets import new_token
from fjord.control.views import AppView, ConfigVersionView
from fjord.sources import SourceError
from fjord.sources.mirror import check_url
from fjord.spec import DynamicConfig, SpecError


def _view(org: str, row: App) -> AppView:
    return AppView(
        org=org,
        app=row.name,
        source=row.source,
        created_at=row.created_at,
        tag_pattern=row.tag_pattern,
        deploy_branch=row.deploy_branch,
        deploy_environment=row.deploy_environment,
        webhook=row.webhook_id is not None,
    )


async def create_app(
    plane: ControlPlane,
    actor: Actor,
    full_name: str,
    repo: str,
    *,
    tag_pattern: str | None = "v*",
    deploy_branch: str | None = None,
    deploy_environment: str | None = None,
) -> AppView:
    """Register ``org/app`` whose source is the Git repository at ``repo`` (a clone URL).

    With Gitea configured, a webhook is registered on the repository in the same step: pushed
    tags matching ``tag_pattern`` build releases, and pushes to ``deploy_branch`` deploy to
    ``deploy_environment``. The control plane never reads a path on its own host.
    """
    org_name, app_name = catalog.split_app(full_name)
    actor.require(org_name, Role.developer)
    try:
        check_url(repo)
    except SourceError as exc:
        raise InvalidError(exc.message, hint=exc.hint) from exc
    if (deploy_branch is None) != (deploy_environment is None):
        raise InvalidError(
            "a branch deploy rule needs both a branch and an environment",
            hint="--deploy-branch main --deploy-env tt02",
        )
    hooks = webhooks.for_repository(plane, repo)
    try:
        async with plane.db.session() as session:
            org = await catalog.org(session, org_name)
            if deploy_environment is not None:
                await catalog.environment(session, deploy_environment)
            row = App(
                org_id=org.id,
                name=app_name,
                source=repo,
                tag_pattern=tag_pattern or None,
                deploy_branch=deploy_branch,
                deploy_environment=deploy_environment,
            )
            session.add(row)
            await session.flush()  # a duplicate fails here, before anything happens in Gitea
            if hooks is not None:
                secret = new_token()
                try:
                    row.webhook_id = await hooks.register(secret)
                except SourceError as exc:  # the app is not registered either (rolled back)
                    raise InvalidError(
                        f"registering the webhook of {full_name} in Gitea failed: {exc.message}",
                        hint="check the clone URL and that the repository exists",
                    ) from exc
                row.webhook_secret_cipher = plane.cipher.encrypt(secret)
            audit.record(
                session,
                actor,
                "app.create",
                full_name,
                org=org_name,
                source=repo,
                webhook=row.webhook_id,
            )
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
