"""``fjord release``: build an app into a signed Flux OCI artifact, publish it, verify it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fjord.artifact.signing import load_private_key, load_public_key
from fjord.cli.output import Output, OutputOption, emit_json, err, fail, line, out, styled
from fjord.errors import FjordError
from fjord.releases import Release, build_release, publish
from fjord.spec import load_platform
from fjord.stores import pull_verified
from fjord.stores.locations import open_location

release_app = typer.Typer(help="Build, publish and verify releases (signed Flux OCI artifacts).")

PlatformOption = typer.Option(
    None, "--platform", help="Platform config file (default: the embedded demo platform)."
)


def _summary(release: Release) -> dict[str, object]:
    return {
        "org": release.org,
        "app": release.app,
        "digest": release.digest,
        "source": release.source,
        "revision": release.revision,
        "environments": list(release.environments),
        "dynamicConfigVersion": release.dynamic_version,
        "builder": release.builder,
        "files": {path: len(data) for path, data in release.files().items()},
    }


@release_app.command("build")
def build(
    app_dir: Annotated[Path, typer.Argument(help="Directory with fjord.yaml (and maybe a chart).")],
    revision: Annotated[str, typer.Option(help="Source revision, e.g. main@sha1:<sha>.")] = "local",
    source: Annotated[
        str,
        typer.Option(help="Source repository URL (default: git remote 'origin', else 'local')."),
    ] = "",
    environment: Annotated[
        list[str] | None,
        typer.Option("--env", help="Target environment(s); default: all of the platform's."),
    ] = None,
    platform_file: Path | None = PlatformOption,
    publish_to: Annotated[
        str | None,
        typer.Option(
            "--publish", help="Store URL: oci://host:port/prefix, file:///dir or azure://c."
        ),
    ] = None,
    key: Annotated[Path | None, typer.Option(help="cosign.key (PKCS#8 PEM) to sign with.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag(s) to move after publishing.")] = None,
    output: Output = OutputOption,
) -> None:
    """Render, check and pack an app; with --publish also push, sign and tag it."""
    from fjord.control.sources import source_url  # here: fjord.control is heavy to import

    try:
        release = build_release(
            app_dir,
            source=source or source_url(app_dir),
            revision=revision,
            platform=load_platform(platform_file),
            environments=environment or None,
        )
        summary = _summary(release)
        if publish_to:
            location = open_location(publish_to)
            private = load_private_key(key.read_bytes()) if key else None

            async def run() -> None:
                async with location.store as store:
                    published = await publish(
                        store,
                        release,
                        key=private,
                        tags=tag or [],
                        repository_prefix=location.prefix,
                    )
                summary["published"] = {
                    "reference": published.reference,
                    "signature": published.signature,
                    "tags": list(published.tags),
                }

            asyncio.run(run())
    except FjordError as exc:
        raise fail(exc) from exc
    if output is Output.json:
        emit_json(summary)
        return
    table = Table(title=f"release {release.org}/{release.app}", show_header=False)
    table.add_row("digest", release.digest)
    table.add_row("revision", release.revision)
    table.add_row("environments", ", ".join(release.environments))
    for path, size in release.files().items():
        table.add_row(path, f"{len(size)} bytes")
    out.print(table)
    if "published" in summary:
        err.print(f"published {summary['published']}")


@release_app.command("verify")
def verify(
    store_url: Annotated[str, typer.Argument(help="Store URL, e.g. oci://127.0.0.1:5000.")],
    reference: Annotated[str, typer.Argument(help="repository:tag or repository@sha256:…")],
    key: Annotated[Path, typer.Option(help="cosign.pub (PEM public key).")],
    output: Output = OutputOption,
) -> None:
    """Check a published release's signature and content; exit 1 if it does not verify."""
    repository, _, ref = reference.replace("@", ":", 1).partition(":")
    try:
        location = open_location(store_url)
        public = load_public_key(key.read_bytes())

        async def run() -> dict[str, object]:
            async with location.store as store:
                artifact = await pull_verified(
                    store, location.repository(repository), ref, [public]
                )
            return {"digest": artifact.digest, "revision": artifact.revision, "verified": True}

        result = asyncio.run(run())
    except FjordError as exc:
        raise fail(exc) from exc
    if output is Output.json:
        emit_json(result)
    else:
        out.print(line(styled("verified", "green"), f" {reference} ({result['digest']})"))
