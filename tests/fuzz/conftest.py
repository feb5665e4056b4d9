"""Fuzz fixtures: the control plane and the Maskinporten emulator served on loopback, and a
count of the generated cases per target, printed at the end of the run.

Runs are bounded (``max_examples`` per target) so that the whole fuzz suite takes about a minute.
Every server is real (uvicorn on a loopback socket, SQLite for the control plane); the fuzz
tests only generate inputs and assert that nothing answers 5xx or raises anything but the
documented error.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fuzz_support import SUPPLIER_ID, SUPPLIER_ORGNO, ControlApi, grant

import gitea_support
from fjord.api import ApiSettings
from fjord.api.server import ApiServer
from fjord.control import ControlPlane, ControlSettings, apps, clusters, credentials, system_actor
from fjord.control.roles import ALL_ORGS, Role
from fjord.control.tokens import create_token
from fjord.maskinporten.emulator import (
    ADMIN_SCOPES,
    EmulatorServer,
    ScopeDefinition,
    SupplierClient,
)
from fjord.maskinporten.keys import generate_jwk, public_jwks
from fjord.spec import default_platform

REPO_ROOT = Path(__file__).resolve().parents[2]
SCOPES = (ScopeDefinition(name="fjord:test.read"), ScopeDefinition(name="fjord:test.write"))

CASES: Counter[str] = Counter()


@pytest.fixture(scope="session")
def fuzz_cases() -> Counter[str]:
    """Add one per generated case under a label (e.g. ``control GET /api/apps``)."""
    return CASES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not CASES:
        return
    terminalreporter.section("fuzz: generated cases per target")
    for label, count in sorted(CASES.items()):
        terminalreporter.write_line(f"{count:6d}  {label}")
    terminalreporter.write_line(f"{sum(CASES.values()):6d}  in total, over {len(CASES)} targets")


async def _prepare(settings: ControlSettings, source: Path) -> tuple[str, str]:
    admin = system_actor("fuzz-setup")
    plane = await ControlPlane.open(settings)
    try:
        # A real repository (deploy requests pin their ref in it when they are accepted).
        gitea = gitea_support.shared()
        await credentials.set_credential(plane, admin, "ttd", gitea.tokens["ttd"])
        repo = gitea.push_app("ttd", source, name="skjema")
        await apps.create_app(plane, admin, "ttd/skjema", repo.clone_url)
        await clusters.bootstrap(plane, admin, "ttd", "tt02", "tt02-1")
        hmac_key = await clusters.cluster_token(plane, admin, "ttd.tt02.tt02-1")
        created = await create_token(plane, admin, "fuzz", {ALL_ORGS: Role.platform_admin})
    finally:
        await plane.close()
    return created.token, hmac_key


@pytest.fixture(scope="session")
def control_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlApi]:
    """The control plane with one app and one bootstrapped cluster, and a platform-admin token."""
    root = tmp_path_factory.mktemp("control")
    source = root / "skjema"
    shutil.copytree(REPO_ROOT / "examples" / "platform-app", source)
    settings = ControlSettings(data_dir=root / "data", platform=default_platform())
    token, hmac_key = asyncio.run(_prepare(settings, source))
    # No worker: requests are what is fuzzed; queued deployments need not build in the background.
    with ApiServer(ApiSettings(control=settings, run_worker=False)) as server:
        yield ControlApi(server.url, token, "ttd.tt02.tt02-1", hmac_key)


@pytest.fixture(scope="session")
def supplier_key() -> dict[str, Any]:
    return generate_jwk("fuzz-supplier-1")


@pytest.fixture(scope="session")
def emulator(supplier_key: dict[str, Any]) -> Iterator[EmulatorServer]:
    supplier = SupplierClient(
        client_id=SUPPLIER_ID, orgno=SUPPLIER_ORGNO, jwks=public_jwks([supplier_key])
    )
    with EmulatorServer(supplier=supplier, scopes=SCOPES, seed=99) as server:
        yield server


@pytest.fixture
def admin(emulator: EmulatorServer, supplier_key: dict[str, Any]) -> Iterator[httpx2.Client]:
    """An HTTP client to the emulator with a fresh self-service token (it lives 120 s)."""
    assertion = grant(supplier_key, emulator.issuer, SUPPLIER_ID, " ".join(sorted(ADMIN_SCOPES)))
    response = httpx2.post(
        emulator.token_endpoint,
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    with httpx2.Client(
        base_url=emulator.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        yield client
