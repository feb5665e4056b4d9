"""``fjord release``: build an app into a signed Flux OCI artifact, publish, verify and inspect it
(local, against a store); create, list and show the control plane's releases (over its API)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from fjord.artifact.provenance import summarize
from fjord.artifact.signing import PublicKey, load_private_key, load_public_key
from fjord.cli.client import ServerOption, TokenOption, run
from fjord.cli.output import Output, OutputOption, emit_json, err, fail, line, out, styled
from fjord.control.views import ReleaseView
from fjord.errors import FjordError
from fjord.releases import Release, build_release, publish
from fjord.spec import load_platform, parse_app_spec
from fjord.stores import Signer, Trust, provenance, pull_verified
from fjord.stores.locations import open_location

release_app = typer.Typer(
    help="Build, publish, verify and inspect signed releases (Flux OCI artifacts + provenance); "
    "create, list and show the control plane's releases."
)

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


LegacyKeyOption = Annotated[
    Path | None,
    typer.Option(
        help="legacy.pub: also accept a legacy `.sig` by this key (migration window only)."
    ),
]


def _trust(key: Path, legacy_key: Path | None) -> Trust:
    legacy: list[PublicKey] = [load_public_key(legacy_key.read_bytes())] if legacy_key else []
    return Trust(keys=[load_public_key(key.read_bytes())], legacy_keys=legacy)


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
    legacy_key: Annotated[
        Path | None,
        typer.Option(
            help="Also write a legacy cosign `.sig` signed with this key (migration window only; "
            "never the --key key, see docs/signing.md)."
        ),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag(s) to move after publishing.")] = None,
    version: Annotated[
        str | None, typer.Option(help="Fills {version} in the spec's image (e.g. 1.4.0).")
    ] = None,
    image: Annotated[str | None, typer.Option(help="Replaces the spec's image.")] = None,
    output: Output = OutputOption,
) -> None:
    """Render, check and pack an app; with --publish also push, sign and tag it."""
    from fjord.control.sources import source_url  # here: fjord.control is heavy to import

    try:
        spec_file = app_dir / "fjord.yaml"
        try:
            text = spec_file.read_bytes()
        except OSError as exc:
            raise FjordError(f"{spec_file}: {exc.strerror or exc}") from exc
        spec = parse_app_spec(text, str(spec_file), version=version, image=image)
        release = build_release(
            spec,
            app_dir=app_dir,
            source=source or source_url(app_dir),
            revision=revision,
            platform=load_platform(platform_file),
            environments=environment or None,
        )
        summary = _summary(release)
        if publish_to:
            location = open_location(publish_to)
            signer = None
            if key:
                legacy = load_private_key(legacy_key.read_bytes()) if legacy_key else None
                signer = Signer(key=load_private_key(key.read_bytes()), legacy_key=legacy)

            async def publish_signed() -> None:
                async with location.store as store:
                    published = await publish(
                        store,
                        release,
                        signer=signer,
                        tags=tag or [],
                        repository_prefix=location.prefix,
                    )
                summary["published"] = {
                    "reference": published.reference,
                    "signature": published.signature,
                    "legacySignature": published.legacy_signature,
                    "provenance": published.provenance,
                    "tags": list(published.tags),
                }

            asyncio.run(publish_signed())
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
    legacy_key: LegacyKeyOption = None,
    output: Output = OutputOption,
) -> None:
    """Check a published release's signature and content; exit 1 if it does not verify."""
    repository, _, ref = reference.replace("@", ":", 1).partition(":")
    try:
        location = open_location(store_url)
        trust = _trust(key, legacy_key)

        async def pull() -> dict[str, object]:
            async with location.store as store:
                artifact = await pull_verified(store, location.repository(repository), ref, trust)
            return {"digest": artifact.digest, "revision": artifact.revision, "verified": True}

        result = asyncio.run(pull())
    except FjordError as exc:
        raise fail(exc) from exc
    if output is Output.json:
        emit_json(result)
    else:
        out.print(line(styled("verified", "green"), f" {reference} ({result['digest']})"))


async def _inspect(store_url: str, reference: str, trust: Trust) -> dict[str, object]:
    repository, _, ref = reference.replace("@", ":", 1).partition(":")
    location = open_location(store_url)
    async with location.store as store:
        repo = location.repository(repository)
        artifact = await pull_verified(store, repo, ref, trust)
        attested = await provenance(store, repo, artifact.digest, trust.keys)
    summary = summarize(attested.predicate)
    return {
        "reference": reference,
        "digest": artifact.digest,
        "annotations": artifact.annotations,
        "verified": True,
        "provenance": {
            "predicateType": attested.predicate_type,
            "builder": {"id": summary.builder_id, "version": summary.builder_version},
            "buildType": summary.build_type,
            "app": summary.app,
            "source": {
                "repository": summary.source,
                "revision": summary.revision,
                "commit": summary.commit,
            },
            "environments": list(summary.environments),
            "dynamicConfigVersion": summary.dynamic_version,
            "inputs": [{"name": i.name, "digest": i.digest} for i in summary.inputs],
        },
    }


@release_app.command("inspect")
def inspect(
    store_url: Annotated[str, typer.Argument(help="Store URL, e.g. oci://127.0.0.1:5000.")],
    reference: Annotated[str, typer.Argument(help="repository:tag or repository@sha256:…")],
    key: Annotated[Path, typer.Option(help="cosign.pub (PEM public key).")],
    legacy_key: LegacyKeyOption = None,
    output: Output = OutputOption,
) -> None:
    """Verify a published release and show its signed provenance; exit 1 if either fails."""
    try:
        result = asyncio.run(_inspect(store_url, reference, _trust(key, legacy_key)))
    except FjordError as exc:
        raise fail(exc) from exc
    if output is Output.json:
        emit_json(result)
        return
    attested: dict[str, Any] = result["provenance"]  # type: ignore[assignment]
    table = Table(title=Text(f"release {reference}"), show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")  # digests whole, never cut with an ellipsis
    rows = [
        ("digest", str(result["digest"])),
        ("signature", "verified"),
        ("provenance", f"verified ({attested['predicateType']})"),
        ("app", attested["app"]),
        ("source", attested["source"]["repository"]),
        ("revision", attested["source"]["revision"]),
        ("commit", attested["source"]["commit"] or "(not a git checkout)"),
        ("environments", ", ".join(attested["environments"])),
        ("dynamic config", f"v{attested['dynamicConfigVersion']}"),
        ("builder", f"{attested['builder']['id']} ({attested['builder']['version']})"),
    ]
    rows += [(f"input {i['name']}", i["digest"]) for i in attested["inputs"]]
    for name, value in rows:
        table.add_row(Text(name), Text(str(value)))  # Text: user values are never markup
    out.print(table)


# ---- releases in the control plane (built from the app's Git repository) ---------------------


def _release_table(row: ReleaseView) -> Table:
    table = Table(title=f"release #{row.id} of {row.org}/{row.app}", show_header=False)
    table.add_row("digest", row.digest)
    table.add_row("repository", Text(row.source))
    table.add_row("ref", Text(row.ref or "–"))
    table.add_row("commit", Text(row.commit or "–"))
    if row.commit_url:
        table.add_row("in Gitea", Text(row.commit_url))
    table.add_row("image", Text(row.image or "–"))
    table.add_row("config", f"v{row.config_version}")
    table.add_row("environments", ", ".join(row.environments))
    table.add_row("built", f"{row.created_at.isoformat()[:19]} by {row.builder}")
    return table


@release_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="org/app")],
    ref: Annotated[str, typer.Option("--ref", help="tag, branch or commit to build")],
    image: Annotated[
        str | None, typer.Option("--image", help="the image to run (default: the spec's)")
    ] = None,
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """Build an app's repository at a ref with its current config; push and sign it."""
    row = run(server, token, lambda api: api.create_release(name, ref, image=image))
    if output is Output.json:
        emit_json(row)
    else:
        out.print(_release_table(row))


@release_app.command("list")
def list_releases(
    name: Annotated[str, typer.Argument(help="org/app")],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """An app's releases, newest first: ref, commit, image and config version."""
    rows = run(server, token, lambda api: api.releases(name))
    if output is Output.json:
        emit_json(rows)
        return
    table = Table("#", "digest", "ref", "commit", "image", "config", "built")
    for row in rows:
        table.add_row(
            str(row.id),
            row.digest.removeprefix("sha256:")[:12],
            Text(row.ref or ""),
            (row.commit or "")[:12],
            Text(row.image or ""),
            f"v{row.config_version}",
            row.created_at.isoformat()[:19],
        )
    out.print(table)


@release_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="org/app")],
    number: Annotated[int, typer.Argument(help="the release's number (see release list)")],
    server: str | None = ServerOption,
    token: str | None = TokenOption,
    output: Output = OutputOption,
) -> None:
    """One release: where it came from (ref, commit linked to Gitea), image, config version."""
    row = run(server, token, lambda api: api.get_release(name, number))
    if output is Output.json:
        emit_json(row)
    else:
        out.print(_release_table(row))
