"""Releases: an app at a revision + dynamic config → one signed Flux OCI artifact in a store.

This module only joins the pieces: :mod:`fjord.render` makes the files, :mod:`fjord.artifact`
packs them, :mod:`fjord.stores` publishes. The order of publishing is the point: blobs and
manifest first, then the signature, and only then the tags, so a cluster that follows a tag never
sees an artifact that is incomplete or not yet signed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from fjord import __version__
from fjord.artifact.oci import EPOCH, Artifact, build_artifact
from fjord.render import RenderedRelease, render_app, render_spec
from fjord.spec import AppSpec, PlatformConfig
from fjord.spec.dynamic import NO_DYNAMIC_CONFIG, DynamicConfig
from fjord.stores import Store, sign

BUILDER = f"fjord/{__version__}"

# Manifest annotations besides Flux's three; Flux copies them into the source's status metadata.
ANNOTATION_ORG = "dev.fjord.org"
ANNOTATION_APP = "dev.fjord.app"
ANNOTATION_CONFIG_VERSION = "dev.fjord.dynamic-config-version"
ANNOTATION_BUILDER = "dev.fjord.builder"


def repository(org: str, app: str) -> str:
    """Where an app's releases live in its org's store."""
    return f"{org}/apps/{app}"


@dataclass(frozen=True)
class Release:
    org: str
    app: str
    source: str
    revision: str
    dynamic_version: int
    builder: str
    environments: tuple[str, ...]
    artifact: Artifact

    @property
    def digest(self) -> str:
        return self.artifact.digest

    @property
    def repository(self) -> str:
        return repository(self.org, self.app)

    def files(self) -> dict[str, bytes]:
        return self.artifact.files()


def _package(
    rendered: RenderedRelease, *, source: str, revision: str, created: dt.datetime
) -> Release:
    artifact = build_artifact(
        rendered.files,
        source=source,
        revision=revision,
        created=created,
        annotations={
            ANNOTATION_ORG: rendered.org,
            ANNOTATION_APP: rendered.app,
            ANNOTATION_CONFIG_VERSION: str(rendered.dynamic_version),
            ANNOTATION_BUILDER: rendered.builder,
        },
    )
    return Release(
        org=rendered.org,
        app=rendered.app,
        source=source,
        revision=revision,
        dynamic_version=rendered.dynamic_version,
        builder=rendered.builder,
        environments=rendered.environments,
        artifact=artifact,
    )


def build_release(
    app: Path | str | AppSpec,
    *,
    source: str,
    revision: str,
    platform: PlatformConfig | None = None,
    dynamic: DynamicConfig = NO_DYNAMIC_CONFIG,
    environments: Sequence[str] | None = None,
    app_dir: Path | None = None,
    created: dt.datetime = EPOCH,
) -> Release:
    """Render, check and pack. The same inputs give the same digest, byte for byte.

    ``created`` defaults to the Unix epoch on purpose: a wall-clock time would make every build
    of unchanged inputs a new release.
    """
    if isinstance(app, AppSpec):
        rendered = render_spec(
            app, app_dir=app_dir, platform=platform, dynamic=dynamic, environments=environments
        )
    else:
        rendered = render_app(app, platform=platform, dynamic=dynamic, environments=environments)
    return _package(rendered, source=source, revision=revision, created=created)


def repack(
    files: dict[str, bytes],
    *,
    org: str,
    app: str,
    source: str,
    revision: str,
    dynamic_version: int,
    builder: str,
    environments: Sequence[str],
) -> Release:
    """The release again from its recorded rendered files: the same bytes, the same digest.

    Lets a control-plane replica push a release another replica built, without rendering."""
    artifact = build_artifact(
        dict(sorted(files.items())),
        source=source,
        revision=revision,
        created=EPOCH,
        annotations={
            ANNOTATION_ORG: org,
            ANNOTATION_APP: app,
            ANNOTATION_CONFIG_VERSION: str(dynamic_version),
            ANNOTATION_BUILDER: builder,
        },
    )
    return Release(
        org=org,
        app=app,
        source=source,
        revision=revision,
        dynamic_version=dynamic_version,
        builder=builder,
        environments=tuple(environments),
        artifact=artifact,
    )


@dataclass(frozen=True)
class Published:
    repository: str
    digest: str
    signature: str | None
    tags: tuple[str, ...]
    reference: str  # e.g. 127.0.0.1:5000/ttd/apps/app1@sha256:…


async def publish(
    store: Store,
    release: Release,
    *,
    key: ec.EllipticCurvePrivateKey | None = None,
    tags: Sequence[str] = (),
    repository_prefix: str = "",
) -> Published:
    """Push the artifact, sign it, then move ``tags``; a failure leaves every tag where it was."""
    repo = f"{repository_prefix}/{release.repository}" if repository_prefix else release.repository
    digest = await store.push(repo, release.artifact)
    signature = await sign(store, repo, digest, key) if key is not None else None
    for tag in tags:
        await store.tag(repo, digest, tag)
    return Published(
        repository=repo,
        digest=digest,
        signature=signature,
        tags=tuple(tags),
        reference=f"{store.docker_reference(repo)}@{digest}",
    )
