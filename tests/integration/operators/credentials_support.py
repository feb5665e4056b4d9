"""Helpers of the credentials operator tests: CRDs, the admin Secret, the operator process."""

from __future__ import annotations

import base64
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import yaml

from fjord.devcluster import processes
from fjord.devcluster.postgres import LocalPostgres
from fjord.devcluster.redis import LocalRedis
from fjord.kube import Kube

ROOT = Path(__file__).resolve().parents[3]
ADMIN_NAMESPACE = "fjord-system"
ADMIN_SECRET = "credentials-admin"


async def install_crds(kube: Kube) -> None:
    for path in sorted((ROOT / "deploy" / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        await kube.apply(crd, force=True)
        await kube.wait_for(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            crd["metadata"]["name"],
            until=lambda o: any(
                c.get("type") == "Established" and c.get("status") == "True"
                for c in ((o or {}).get("status") or {}).get("conditions") or []
            ),
        )


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def install_admin_secret(kube: Kube, postgres: LocalPostgres, redis: LocalRedis) -> str:
    await kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ADMIN_NAMESPACE}}
    )
    await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": ADMIN_SECRET, "namespace": ADMIN_NAMESPACE},
            "data": {"postgresql-url": _b64(postgres.dsn), "redis-url": _b64(redis.url)},
        },
        force=True,
    )
    return f"{ADMIN_NAMESPACE}/{ADMIN_SECRET}"


@dataclass
class OperatorProcess:
    record: processes.ProcessRecord
    metrics_port: int
    liveness_port: int

    def metrics(self) -> str:
        return httpx2.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def kill(self) -> None:
        os.kill(self.record.pid, 9)
        processes.stop(self.record, timeout=1)

    def stop(self) -> None:
        processes.stop(self.record)


def start_operator(
    kubeconfig: Path,
    admin_secret: str,
    log: Path,
    *,
    janitor_interval: float = 2.0,
    janitor_grace: float = 5.0,
    resync: float = 3600.0,
    extra: list[str] | None = None,
    wait: bool = True,
) -> OperatorProcess:
    metrics_port, liveness_port = processes.free_port(), processes.free_port()
    argv = [
        sys.executable,
        "-m",
        "fjord.operators.common.main",  # ``fjord operator`` without the rest of the CLI
        "operator",
        "run",
        "--all-namespaces",
        "--only",
        "credentials",
        "--only",
        "janitor",
        "--kubeconfig",
        str(kubeconfig),
        "--credentials-admin-secret",
        admin_secret,
        "--janitor-interval",
        str(janitor_interval),
        "--resync",
        str(resync),
        # The janitor spares Secrets younger than this (default 60 s); short, so tests that
        # wait for a sweep do not wait for the grace period.
        "--option",
        f"janitor.grace={janitor_grace}",
        "--metrics",
        f"127.0.0.1:{metrics_port}",
        "--liveness",
        f"127.0.0.1:{liveness_port}",
        *(extra or []),
    ]
    record = processes.start("operator", argv, log=log)
    operator = OperatorProcess(record, metrics_port, liveness_port)
    if wait:
        processes.wait_until(
            "operator liveness",
            lambda: httpx2.get(f"http://127.0.0.1:{liveness_port}/healthz", timeout=2).is_success,
            watch=[record],
            timeout=60,
        )
    return operator


def app_credentials(
    namespace: str,
    name: str,
    *,
    databases: tuple[str, ...] = ("main",),
    redis: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = dict(extra)
    if databases:
        spec["postgresql"] = {
            "databases": [{"name": d, "secretName": f"{name}-pg-{d}"} for d in databases]
        }
    if redis:
        spec["redis"] = {"keyPrefix": f"{name}:", "secretName": f"{name}-redis"}
    return {
        "apiVersion": "fjord.dev/v1alpha1",
        "kind": "AppCredentials",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
