"""``fjord maskinporten keygen`` and ``emulator`` as a user runs them, in a subprocess."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from fjord.maskinporten.client import MaskinportenClient
from fjord.maskinporten.secret_format import MaskinportenSettings


async def scope_of_token(settings: MaskinportenSettings) -> str:
    async with MaskinportenClient(settings) as mp:
        return (await mp.get_token()).scope


CLI = [sys.executable, "-c", "from fjord.cli.main import app; app()", "maskinporten"]


def test_keygen_then_emulator_serves_the_supplier(tmp_path: Path) -> None:
    private, public = tmp_path / "supplier.jwk", tmp_path / "supplier.jwks"
    subprocess.run(
        [*CLI, "keygen", "--private", private, "--public", public, "--kid", "sup-1"], check=True
    )
    assert private.stat().st_mode & 0o777 == 0o600
    assert "d" not in json.loads(public.read_text())["keys"][0]
    command = [*CLI, "emulator", "--port", "0", "--supplier-jwks", public, "--log-level", "warning"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        issuer = match.group(1)
        # The URL is printed just before uvicorn starts serving; poll until it answers.
        meta: dict[str, str] = {}
        with httpx2.Client() as http:
            for _ in range(200):
                try:
                    meta = http.get(issuer + ".well-known/oauth-authorization-server").json()
                    break
                except httpx2.TransportError:
                    time.sleep(0.05)
        assert meta["issuer"] == issuer
        settings = MaskinportenSettings.for_issuer(
            issuer=issuer,
            client_id="fjord-supplier",
            jwk=json.loads(private.read_text()),
            scopes=["idporten:dcr.read"],
        )
        assert asyncio.run(scope_of_token(settings)) == "idporten:dcr.read"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
