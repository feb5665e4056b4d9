"""``fjord maskinporten``: run the Digdir/Maskinporten emulator and make keys for it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from fjord.cli.output import err
from fjord.maskinporten.emulator.clock import EmulatorClock
from fjord.maskinporten.emulator.config import (
    ADMIN_SCOPES,
    EmulatorConfig,
    FaultConfig,
    ScopeDefinition,
    SupplierClient,
)
from fjord.maskinporten.emulator.server import LOOPBACK, bind_loopback, uvicorn_server
from fjord.maskinporten.emulator.state import EmulatorState
from fjord.maskinporten.keys import generate_jwk, public_jwks

maskinporten_app = typer.Typer(help="Maskinporten: a local emulator of the Digdir APIs, and keys.")


@maskinporten_app.command("emulator")
def emulator(
    supplier_jwks: Annotated[
        Path,
        typer.Option(exists=True, dir_okay=False, help="Public JWKS (or JWK) of the supplier."),
    ],
    port: int = typer.Option(8050, min=0, max=65535, help="Loopback port (0: any free port)."),
    supplier_client_id: str = typer.Option("fjord-supplier", help="Supplier client's client_id."),
    supplier_orgno: str = typer.Option("991825827", help="Supplier's organisation number."),
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="A scope that exists; repeatable.")
    ] = None,
    allow_any_scope: bool = typer.Option(False, help="Treat every scope as existing."),
    issuer: str | None = typer.Option(None, help="Issuer/aud (default: http://127.0.0.1:PORT/)."),
    seed: int | None = typer.Option(None, help="Seed for ids and fault decisions."),
    latency: float = typer.Option(0.0, min=0, help="Added latency in seconds."),
    latency_rate: float = typer.Option(0.0, min=0, max=1),
    error_rate: float = typer.Option(0.0, min=0, max=1, help="Rate of 5xx answers."),
    error_status: int = typer.Option(503, min=500, max=599),
    rate_limit_rate: float = typer.Option(0.0, min=0, max=1, help="Rate of 429 answers."),
    retry_after: int = typer.Option(1, min=0, help="Retry-After seconds sent with 429."),
    log_level: str = typer.Option("info"),
) -> None:
    """Serve the emulator on 127.0.0.1 until interrupted."""
    supplier = SupplierClient.from_jwks_file(
        supplier_jwks, client_id=supplier_client_id, orgno=supplier_orgno, scopes=ADMIN_SCOPES
    )
    sock = bind_loopback(port)
    bound = int(sock.getsockname()[1])
    base = f"http://{LOOPBACK}:{bound}/"
    config = EmulatorConfig(
        issuer=issuer or base,
        base_url=base,
        supplier=supplier,
        scopes=tuple(ScopeDefinition(name=s) for s in scope or ()),
        allow_unknown_scopes=allow_any_scope,
        faults=FaultConfig(
            latency_seconds=latency,
            latency_rate=latency_rate,
            error_rate=error_rate,
            error_status=error_status,
            rate_limit_rate=rate_limit_rate,
            retry_after=retry_after,
        ),
        seed=seed,
    )
    state = EmulatorState(config, EmulatorClock())
    # Plain echo, not Rich: the URL line must not wrap, scripts read it to find the port.
    typer.echo(f"Maskinporten emulator on {base} issuer {config.issuer}", err=True)
    uvicorn_server(state, log_level=log_level).run(sockets=[sock])


@maskinporten_app.command("keygen")
def keygen(
    private: Annotated[Path, typer.Option(dir_okay=False, help="Where to write the private JWK.")],
    public: Annotated[Path, typer.Option(dir_okay=False, help="Where to write the public JWKS.")],
    kid: str | None = typer.Option(None, help="Key id (default: a random UUID)."),
    size: int = typer.Option(2048, help="RSA key size in bits."),
) -> None:
    """Generate an RSA signing key: the private JWK (mode 0600) and its public JWKS."""
    key = generate_jwk(kid, size=size)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(key, fh, indent=2)
    public.write_text(json.dumps(public_jwks([key]), indent=2))
    err.print(f"kid {key['kid']}: private {private}, public {public}")
