"""Releases built from an app's Git repository at a ref, plus its dynamic config.

The one way the control plane turns source into a release: resolve the ref to a commit in the
app's bare mirror (:mod:`fjord.sources`), read ``fjord.yaml`` (and the chart folder, if any) of
that commit, fill the image's ``{version}`` from the tag (or take the image CI names), render,
pack, then push and sign (no tag moves: pointing an environment at it is a deployment's job).

Same commit + same config → same digest: the artifact's revision is ``sha1:<commit>`` and the
files are written to a throw-away directory whose path never reaches the output.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from fjord.control import audit, catalog, credentials, publishing
from fjord.control.errors import InvalidError
from fjord.control.models import ConfigVersion, Release
from fjord.control.plane import ControlPlane
from fjord.control.roles import Actor, Role
from fjord.errors import FjordError
from fjord.releases import Release as BuiltRelease
from fjord.releases import build_release
from fjord.sources import Mirror, Resolved, SourceError, mirror_for
from fjord.spec import DynamicConfig, PlatformConfig, parse_app_spec

SPEC_FILE = "fjord.yaml"


@dataclass(frozen=True)
class GitBuild:
    """A release built from a commit, with where it came from."""

    built: BuiltRelease
    resolved: Resolved
    image: str | None


def image_version(resolved: Resolved) -> str | None:
    """The version a ``{version}`` placeholder takes: the tag built from (``v1.4.0`` → ``1.4.0``),
    else the highest tag pointing at the commit, else None."""
    if resolved.kind == "tag":
        tag = resolved.ref
    elif resolved.tags:
        tag = max(resolved.tags, key=_version_key)
    else:
        return None
    return tag[1:] if re.match(r"^v\d", tag) else tag


def _version_key(tag: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+]", tag))


def render_commit(
    mirror: Mirror,
    resolved: Resolved,
    *,
    org: str,
    app: str,
    platform: PlatformConfig,
    dynamic: DynamicConfig,
    image: str | None = None,
    version: str | None = None,
) -> GitBuild:
    """Render and pack ``resolved``'s commit (blocking: run it in a thread). ``version`` (pinned
    earlier) fills ``{version}``; by default it comes from ``resolved``'s tags."""
    where = f"{resolved.repository} at {resolved.ref}"
    files = mirror.read(resolved.commit, [SPEC_FILE], resolved.ref)
    if SPEC_FILE not in files:
        raise SourceError(
            f"{where}: no {SPEC_FILE} at the top of the repository",
            hint="fjord builds apps whose repository has fjord.yaml at its root",
        )
    spec = parse_app_spec(
        files[SPEC_FILE],
        f"{where}:{SPEC_FILE}",
        version=version if version is not None else image_version(resolved),
        image=image,
    )
    if (spec.org, spec.app) != (org, app):
        raise SourceError(f"{where}: {SPEC_FILE} declares {spec.org}/{spec.app}, not {org}/{app}")
    with tempfile.TemporaryDirectory(prefix="fjord-build-") as tmp:
        if spec.chart is not None:
            mirror.checkout(resolved.commit, Path(tmp), [spec.chart.path], resolved.ref)
        built = build_release(
            spec,
            app_dir=Path(tmp),
            source=mirror.name,
            revision=f"sha1:{resolved.commit}",
            platform=platform,
            dynamic=dynamic,
        )
    return GitBuild(built, resolved, spec.image)


async def latest_config(plane: ControlPlane, app_id: int) -> DynamicConfig:
    """The app's dynamic config as it is now (a release pins this version)."""
    async with plane.db.session() as session:
        row = (
            await session.scalars(
                select(ConfigVersion)
                .where(ConfigVersion.app_id == app_id)
                .order_by(ConfigVersion.version.desc())
                .limit(1)
            )
        ).one_or_none()
    return DynamicConfig(row.version, row.values) if row else DynamicConfig()


async def _mirror(plane: ControlPlane, ref: catalog.AppRef) -> Mirror:
    async with plane.db.session() as session:
        token = await credentials.org_token(session, plane, ref.org.id)
    try:
        return mirror_for(plane.settings.mirrors_dir, ref.app.source, token)
    except SourceError as exc:
        raise InvalidError(f"{ref.full_name}: {exc}") from exc


async def resolve(plane: ControlPlane, ref: catalog.AppRef, git_ref: str | None) -> Resolved:
    """Pin ``git_ref`` (None: the repository's default branch) to a commit now, fetching first;
    a bad ref or credential is :class:`InvalidError` naming the repository and the ref."""
    mirror = await _mirror(plane, ref)
    try:
        if git_ref is None:
            git_ref = await asyncio.to_thread(mirror.default_branch)
        return await asyncio.to_thread(mirror.resolve, git_ref)
    except SourceError as exc:
        raise InvalidError(f"{ref.full_name}: {exc.message}", hint=exc.hint) from exc


async def build(
    plane: ControlPlane,
    ref: catalog.AppRef,
    resolved: Resolved,
    *,
    dynamic: DynamicConfig,
    image: str | None = None,
    version: str | None = None,
) -> GitBuild:
    """Render the pinned commit; source and spec problems become :class:`InvalidError`."""
    mirror = await _mirror(plane, ref)
    try:
        if not await asyncio.to_thread(mirror.has_commit, resolved.commit):
            await asyncio.to_thread(mirror.fetch)  # another replica pinned it; fetch it here
        return await asyncio.to_thread(
            render_commit,
            mirror,
            resolved,
            org=ref.org.name,
            app=ref.app.name,
            platform=plane.settings.platform,
            dynamic=dynamic,
            image=image,
            version=version,
        )
    except SourceError as exc:
        raise InvalidError(f"{ref.full_name}: {exc.message}", hint=exc.hint) from exc
    except FjordError as exc:  # spec, render and check errors name the file and field already
        raise InvalidError(f"{ref.full_name} at {resolved.ref}: {exc}") from exc


async def record(
    plane: ControlPlane, ref: catalog.AppRef, done: GitBuild, dynamic: DynamicConfig
) -> Release:
    """The release row for ``done`` (the existing one when the digest was built before)."""
    built = done.built
    for _ in range(2):
        try:
            async with plane.db.session() as session:
                row = (
                    await session.scalars(
                        select(Release).where(
                            Release.app_id == ref.app.id, Release.digest == built.digest
                        )
                    )
                ).one_or_none()
                if row is None:
                    row = Release(
                        app_id=ref.app.id,
                        digest=built.digest,
                        source=built.source,
                        revision=built.revision,
                        ref=done.resolved.ref,
                        commit=done.resolved.commit,
                        image=done.image,
                        config_version=built.dynamic_version,
                        builder=built.builder,
                        environments=list(built.environments),
                        files={p: data.decode() for p, data in built.files().items()},
                        config=dict(dynamic.values),
                    )
                    session.add(row)
                    await session.flush()
                return row
        except IntegrityError:
            continue  # another build recorded the same digest at the same moment
    raise RuntimeError(f"could not record release {built.digest}")


async def create_release(
    plane: ControlPlane,
    actor: Actor,
    full_name: str,
    git_ref: str,
    *,
    image: str | None = None,
) -> Release:
    """Build ``full_name`` at ``git_ref`` with the config as it is now, push and sign it.

    Nothing is published when anything fails before the push; the push itself moves no tag.
    """
    org_name, app_name = catalog.split_app(full_name)
    actor.require(org_name, Role.developer)
    async with plane.db.session() as session:
        ref = await catalog.app(session, org_name, app_name)
    dynamic = await latest_config(plane, ref.app.id)
    resolved = await resolve(plane, ref, git_ref)
    done = await build(plane, ref, resolved, dynamic=dynamic, image=image)
    await publishing.push_release(plane, org_name, done.built)
    row = await record(plane, ref, done, dynamic)
    async with plane.db.session() as session:
        audit.record(
            session,
            actor,
            "release.create",
            full_name,
            org=org_name,
            ref=git_ref,
            commit=done.resolved.commit,
            digest=done.built.digest,
        )
    return row


async def commit_range(
    plane: ControlPlane, ref: catalog.AppRef, old: str, new: str, limit: int = 100
) -> list[dict[str, str]]:
    """The commits in ``new`` that ``old`` lacks (newest first), from the app's mirror."""
    mirror = await _mirror(plane, ref)
    try:
        await asyncio.to_thread(mirror.resolve, new)  # fetches if the mirror lacks it
        return await asyncio.to_thread(mirror.commits_between, old, new, limit)
    except SourceError:
        return []
