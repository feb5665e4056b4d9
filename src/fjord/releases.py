"""Releases: an app at a revision + dynamic config → one signed Flux OCI artifact in a store.

This module only joins the pieces: :mod:`fjord.render` makes the files, :mod:`fjord.artifact`
packs them, :mod:`fjord.stores` publishes. The order of publishing is the point: blobs and
manifest first, then the signatures and the signed provenance, and only then the tags, so a
cluster that follows a tag never sees an artifact that is incomplete or not yet signed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fjord import __version__
from fjord.artifact.digest import canonical_json, sha256_digest
from fjord.artifact.oci import EPOCH, Artifact, build_artifact
from fjord.artifact.provenance import BuildFacts, Input
from fjord.render import RenderedRelease, render_spec
from fjord.spec import AppSpec, PlatformConfig, default_platform
from fjord.spec.dynamic import NO_DYNAMIC_CONFIG, DynamicConfig
from fjord.spec.loader import load_app_spec
from fjord.stores import Signer, Store, sign

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
    inputs: tuple[Input, ...] = ()  # what the provenance lists, with digests

    @property
    def facts(self) -> BuildFacts:
        """What this release's provenance states."""
        return BuildFacts(
            org=self.org,
            app=self.app,
            source=self.source,
            revision=self.revision,
            environments=self.environments,
            dynamic_version=self.dynamic_version,
            builder=self.builder,
            inputs=self.inputs,
        )

    @property
    def digest(self) -> str:
        return self.artifact.digest

    @property
    def repository(self) -> str:
        return repository(self.org, self.app)

    def files(self) -> dict[str, bytes]:
        return self.artifact.files()


def _input(name: str, document: object) -> Input:
    return Input(name, sha256_digest(canonical_json(document)))


def build_inputs(
    spec: AppSpec, platform: PlatformConfig, dynamic: DynamicConfig
) -> tuple[Input, ...]:
    """The rendered inputs, each digested over its canonical JSON (for the provenance)."""
    return (
        _input("fjord.yaml", spec.model_dump(mode="json")),
        _input("platform-config", platform.model_dump(mode="json")),
        _input(
            f"dynamic-config-v{dynamic.version}",
            {"version": dynamic.version, "values": dict(dynamic.values)},
        ),
    )


def _package(
    rendered: RenderedRelease,
    *,
    source: str,
    revision: str,
    created: dt.datetime,
    inputs: tuple[Input, ...] = (),
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
        inputs=inputs,
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
        spec = app
        rendered = render_spec(
            app, app_dir=app_dir, platform=platform, dynamic=dynamic, environments=environments
        )
    else:
        spec = load_app_spec(Path(app) / "fjord.yaml")
        rendered = render_spec(
            spec, app_dir=Path(app), platform=platform, dynamic=dynamic, environments=environments
        )
    inputs = build_inputs(spec, platform or default_platform(), dynamic)
    return _package(rendered, source=source, revision=revision, created=created, inputs=inputs)


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
    signature: str | None  # the bundle referrer's digest (or the `.sig`'s, legacy only)
    legacy_signature: str | None
    provenance: str | None
    tags: tuple[str, ...]
    reference: str  # e.g. 127.0.0.1:5000/ttd/apps/app1@sha256:…


async def publish(
    store: Store,
    release: Release,
    *,
    signer: Signer | None = None,
    tags: Sequence[str] = (),
    repository_prefix: str = "",
) -> Published:
    """Push the artifact, sign it and attest its provenance, then move ``tags``.

    A failure leaves every tag where it was. Without a signer nothing is signed (a local build).
    """
    repo = f"{repository_prefix}/{release.repository}" if repository_prefix else release.repository
    digest = await store.push(repo, release.artifact)
    signature = legacy = attestation = None
    if signer is not None:
        signed = await sign(
            store,
            repo,
            digest,
            signer,
            provenance_of=release.facts,
            manifest=release.artifact.manifest,
        )
        signature, legacy = signed.bundle or signed.legacy, signed.legacy
        attestation = signed.provenance
    if tags:
        await store.tag(repo, digest, *tags, manifest=release.artifact.manifest)
    return Published(
        repository=repo,
        digest=digest,
        signature=signature,
        legacy_signature=legacy,
        provenance=attestation,
        tags=tuple(tags),
        reference=f"{store.docker_reference(repo)}@{digest}",
    )
