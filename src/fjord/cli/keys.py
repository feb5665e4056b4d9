"""``fjord keys``: make the ECDSA P-256 key pair that signs releases (cosign-compatible)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from fjord.artifact.signing import generate_key_pair
from fjord.cli.output import err, fail

keys_app = typer.Typer(help="Signing keys for releases (cosign-compatible ECDSA P-256).")


def _write(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never clobber a key by accident; the mode is set at creation, so the private key
    # is never readable by others, not even for an instant.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


@keys_app.command("generate")
def generate(
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", file_okay=False, help="Where to write the keys.")
    ] = Path("."),
    password_env: Annotated[
        str | None,
        typer.Option(
            help="Name of an environment variable holding a password to encrypt the private key."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite existing key files.")] = False,
) -> None:
    """Write cosign.key (PKCS#8 PEM) and cosign.pub (PKIX PEM).

    Give cosign.pub to Flux as a Secret key ending in .pub (OCIRepository spec.verify).
    """
    password: bytes | None = None
    if password_env is not None:
        value = os.environ.get(password_env)
        if not value:
            raise fail(f"environment variable {password_env} is empty or unset", 2)
        password = value.encode()
    private_path = output_dir / "cosign.key"
    public_path = output_dir / "cosign.pub"
    existing = [p for p in (private_path, public_path) if p.exists()]
    if existing and not force:
        raise fail(f"{', '.join(map(str, existing))} already exist (use --force)", 1)
    for path in existing:
        path.unlink()
    output_dir.mkdir(parents=True, exist_ok=True)
    pair = generate_key_pair(password)
    _write(private_path, pair.private_pem, 0o600)
    _write(public_path, pair.public_pem, 0o644)
    err.print(f"wrote {private_path} (private, mode 0600) and {public_path}")
