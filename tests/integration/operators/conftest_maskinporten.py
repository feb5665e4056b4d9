"""Fixtures and helpers of the Maskinporten operator tests (imported by the test modules).

The emulator runs in this process (a thread) on wall time, because the operator runs as a real
subprocess (``python -m fjord.cli operator run --only maskinporten``) against the real local
cluster and must see the same clock the emulator uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fjord.devcluster import processes
from fjord.devcluster.cluster import ClusterState
from fjord.kube import Kube, is_true
from fjord.maskinporten.emulator import (
    ADMIN_SCOPES,
    EmulatorServer,
    FaultConfig,
    ScopeDefinition,
    SupplierClient,
)
from fjord.maskinporten.keys import generate_jwk, public_jwks
from fjord.maskinporten.secret_format import MaskinportenSettings
from fjord.spec.infra import API_VERSION

REPO = Path(__file__).resolve().parents[3]
CRD = REPO / "deploy" / "crds" / "maskinportenclients.fjord.dev.yaml"
SUPPLIER_ID = "fjord-supplier"
SUPPLIER_ORGNO = "991825827"
APP_ORGNO = "310000001"
READ, WRITE, OTHER = "fjord:test.read", "fjord:test.write", "fjord:other"
KIND = "MaskinportenClient"
PLATFORM = "testcluster"


@pytest.fixture(scope="session")
def mp_supplier_key() -> dict[str, Any]:
    return generate_jwk("op-supplier-key")


@pytest.fixture(scope="session")
def mp_emulator_server(mp_supplier_key: dict[str, Any]) -> Iterator[EmulatorServer]:
    supplier = SupplierClient(
        client_id=SUPPLIER_ID, orgno=SUPPLIER_ORGNO, jwks=public_jwks([mp_supplier_key])
    )
    scopes = tuple(ScopeDefinition(name=s) for s in (READ, WRITE, OTHER))
    with EmulatorServer(supplier=supplier, scopes=scopes, seed=7) as server:
        yield server


@pytest.fixture
def mp_emulator(mp_emulator_server: EmulatorServer) -> EmulatorServer:
    """The shared emulator, emptied, on wall time and without faults."""
    mp_emulator_server.state.clock.reset()
    mp_emulator_server.state.reset()
    return mp_emulator_server


@pytest.fixture
def supplier_dir(
    tmp_path: Path, mp_emulator: EmulatorServer, mp_supplier_key: dict[str, Any]
) -> Path:
    """The supplier's credentials as a mounted Secret directory (the documented format)."""
    settings = MaskinportenSettings.for_issuer(
        issuer=mp_emulator.issuer,
        client_id=SUPPLIER_ID,
        jwk=mp_supplier_key,
        scopes=list(ADMIN_SCOPES[:5]),
    )
    directory = tmp_path / "supplier"
    directory.mkdir()
    for key, value in settings.to_secret_data().items():
        (directory / key).write_text(value)
    return directory


@pytest.fixture(scope="session")
async def mp_crd(cluster: ClusterState) -> None:
    import yaml

    async with await Kube.connect(cluster.kubeconfig) as kube:
        await kube.apply(yaml.safe_load(CRD.read_text()), field_manager="fjord-tests", force=True)
        await kube.wait_for(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "maskinportenclients.fjord.dev",
            until=lambda o: is_true(o, "Established"),
            timeout=60,
        )


@dataclass
class Operator:
    """The operator as a subprocess; ``kill`` is SIGKILL (a crash), ``stop`` is graceful."""

    argv: list[str]
    log: Path
    env: dict[str, str]
    record: processes.ProcessRecord | None = None
    starts: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        self.starts += 1
        self.record = processes.start(
            f"maskinporten-operator-{self.starts}", self.argv, log=self.log, env=self.env
        )

    def kill(self) -> None:
        if self.record is not None and processes.is_alive(self.record):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.record.pid, signal.SIGKILL)
        if self.record is not None:
            processes.stop(self.record, timeout=5)
        self.record = None

    def stop(self) -> None:
        if self.record is not None:
            processes.stop(self.record, timeout=10)
        self.record = None

    def alive(self) -> bool:
        return self.record is not None and processes.is_alive(self.record)

    def tail(self) -> str:
        return processes.log_tail(self.log, 40)


def operator_for(
    cluster: ClusterState,
    namespace: str,
    emulator: EmulatorServer,
    supplier: Path,
    log: Path,
    **options: str,
) -> Operator:
    opts = {
        "maskinporten.api-url": emulator.url,
        "maskinporten.client-orgno": APP_ORGNO,
        "maskinporten.platform-id": PLATFORM,
        "maskinporten.supplier-dir": str(supplier),
        "maskinporten.request-attempts": "6",
        **{f"maskinporten.{k.replace('_', '-')}": v for k, v in options.items()},
    }
    argv = [
        sys.executable,
        "-m",
        "fjord.cli",
        "operator",
        "run",
        "--only",
        "maskinporten",
        "-n",
        namespace,
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--liveness",
        "",
        "--metrics",
        "",
    ]
    for key, value in opts.items():
        argv += ["--option", f"{key}={value}"]
    env = {"PYTHONUNBUFFERED": "1", "KUBECONFIG": str(cluster.kubeconfig)}
    return Operator(argv=argv, log=log, env=env)


@pytest.fixture
async def operator(
    cluster: ClusterState,
    namespace: str,
    mp_emulator: EmulatorServer,
    supplier_dir: Path,
    tmp_path: Path,
    mp_crd: None,
) -> AsyncIterator[Operator]:
    op = operator_for(cluster, namespace, mp_emulator, supplier_dir, tmp_path / "operator.log")
    try:
        yield op
        await cleanup(cluster, namespace, op, mp_emulator)
    finally:
        op.stop()


async def cleanup(
    cluster: ClusterState, namespace: str, op: Operator, emulator: EmulatorServer
) -> None:
    """Delete the test's CRs through the operator, so no finalizer keeps the namespace."""
    emulator.state.set_faults(FaultConfig())
    if not op.alive():
        op.start()
    async with await Kube.connect(cluster.kubeconfig) as kube:
        for obj in await kube.items(API_VERSION, KIND, namespace):
            await kube.delete(API_VERSION, KIND, obj["metadata"]["name"], namespace)
        deadline = time.monotonic() + 60
        while await kube.items(API_VERSION, KIND, namespace):
            assert time.monotonic() < deadline, f"CRs not deleted; operator log:\n{op.tail()}"
            await asyncio.sleep(0.2)


# -- CRs, Secrets and the emulator's view --------------------------------------------------------


def client_manifest(
    name: str, namespace: str, scopes: list[str], secret: str | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scopes": scopes, "secretName": secret or f"{name}-maskinporten"},
    }


async def create_client(
    kube: Kube, name: str, namespace: str, scopes: list[str], secret: str | None = None
) -> None:
    await kube.create(client_manifest(name, namespace, scopes, secret))


async def set_scopes(kube: Kube, name: str, namespace: str, scopes: list[str]) -> None:
    await kube.patch(API_VERSION, KIND, name, {"spec": {"scopes": scopes}}, namespace)


async def request_rotation(kube: Kube, name: str, namespace: str) -> str:
    value = uuid.uuid4().hex[:8]
    patch = {"metadata": {"annotations": {"fjord.dev/rotate": value}}}
    await kube.patch(API_VERSION, KIND, name, patch, namespace)
    return value


async def wait_ready(
    kube: Kube, name: str, namespace: str, *, timeout: float = 60, op: Operator | None = None
) -> dict[str, Any]:
    """Wait until Ready=True for the current generation."""

    def ready(obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        status = obj.get("status") or {}
        return is_true(obj, "Ready") and status.get("observedGeneration") == obj["metadata"].get(
            "generation"
        )

    try:
        obj = await kube.wait_for(
            API_VERSION, KIND, name, namespace, until=ready, timeout=timeout, what="Ready"
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\noperator log:\n{op.tail() if op else ''}") from exc
    assert obj is not None
    return obj


async def read_settings(kube: Kube, namespace: str, secret: str) -> MaskinportenSettings | None:
    import base64

    obj = await kube.get("v1", "Secret", secret, namespace)
    if obj is None or not obj.get("data"):
        return None
    data = {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}
    try:
        return MaskinportenSettings.from_secret_data(data)
    except Exception:
        return None


def emulator_clients(emulator: EmulatorServer) -> list[dict[str, Any]]:
    return [c for c in emulator.state.dump()["clients"] if not c["bootstrap"]]


def identity(namespace: str, name: str) -> str:
    return f"fjord:{PLATFORM}:{namespace}/{name}"


def key_accepted(emulator: EmulatorServer, settings: MaskinportenSettings) -> str | None:
    """Why the emulator would reject the Secret's active key, or None if it accepts it."""
    now = emulator.state.clock.now()
    for client in emulator_clients(emulator):
        if client["client_id"] != settings.client_id:
            continue
        key = next((k for k in client["keys"] if k["kid"] == settings.kid), None)
        if key is None:
            return f"kid {settings.kid} not registered on {settings.client_id}"
        if key["exp"] <= now:
            return f"kid {settings.kid} expired"
        return None
    return f"client {settings.client_id} does not exist"


async def token_for(settings: MaskinportenSettings, scopes: list[str] | None = None) -> str:
    """A fresh access token with the Secret's data (the app's token client, no cache)."""
    from fjord.maskinporten.client import MaskinportenClient
    from fjord.retry import RetryPolicy

    async with httpx2.AsyncClient(timeout=10) as http:
        client = MaskinportenClient(settings, http=http, retry=RetryPolicy(attempts=1))
        token = await client.get_token(scopes)
        return token.access_token


def decode_claims(token: str) -> dict[str, Any]:
    import base64

    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload))
    return result


async def eventually(check: Any, *, timeout: float = 60, interval: float = 0.2) -> Any:
    """Poll an async ``check`` until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last: {last!r})")
