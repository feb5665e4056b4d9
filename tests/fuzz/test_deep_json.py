"""JSON nested deeper than Python's recursion limit is a client error everywhere, not a 500.

``json.loads`` recurses once per level, so a body of a few hundred kilobytes of ``[`` raises
RecursionError, which no size limit catches.
"""

from __future__ import annotations

import base64

import httpx2
from fuzz_support import ControlApi

from fjord.control.events import sign
from fjord.maskinporten.emulator import EmulatorServer

DEEP = b"[" * 200_000 + b"]" * 200_000
JSON = {"Content-Type": "application/json"}


def test_control_api_json_body(control_api: ControlApi) -> None:
    response = httpx2.put(
        f"{control_api.url}/api/apps/ttd/skjema/config",
        content=DEEP,
        headers={**JSON, "Authorization": f"Bearer {control_api.token}"},
    )
    assert 400 <= response.status_code < 500, response.text


def test_flux_event(control_api: ControlApi) -> None:
    response = httpx2.post(
        f"{control_api.url}/api/flux/events/{control_api.cluster}",
        content=DEEP,
        headers={**JSON, "X-Signature": sign(control_api.cluster_token, DEEP)},
    )
    assert response.status_code == 422, response.text


def test_emulator_jwks_and_token(emulator: EmulatorServer, admin: httpx2.Client) -> None:
    jwks = admin.put("/clients/x/jwks", content=DEEP, headers=JSON)
    assert jwks.status_code == 400, jwks.text
    header = base64.urlsafe_b64encode(DEEP).rstrip(b"=").decode()
    response = httpx2.post(
        emulator.token_endpoint,
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": f"{header}.e30.c2ln",
        },
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
