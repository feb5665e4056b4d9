"""Maskinporten benchmark: the operator at 500 clients, and the apps' token client.

Prints one JSON document. In one run, side by side:

- operator: N ``MaskinportenClient`` CRs (default 500) against the emulator with 20 ms added to
  every call: seconds until all are Ready, the operator process's peak RSS, and Digdir calls per
  client (self-service API calls and supplier token requests, counted by the emulator);
- token client: cached ``get_token`` calls per second, and the cost of a fresh grant (sign a
  JWT, POST it, parse the answer) with and without the 20 ms latency.

    .venv/bin/python bench/maskinporten.py [--clients 500] [--latency 0.02] [--workers 16]
        [--baseline-src DIR]

``--baseline-src DIR`` (e.g. ``git archive main src | tar -x -C /tmp/base``, then
``/tmp/base/src``) runs the same scenario first with the operator process importing fjord from
DIR, then from this checkout, and prints both with the candidate/baseline ratios and the load
average around each run (the machine is shared: compare within one run only).

It starts its own local cluster (etcd, apiserver, controller-manager, scheduler, kwok), so give
it a few minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
import yaml

from bench_compare import compare, load_average
from fjord.devcluster import processes
from fjord.devcluster.cluster import LocalCluster
from fjord.kube import Kube, is_true
from fjord.maskinporten.client import MaskinportenClient
from fjord.maskinporten.emulator import (
    ADMIN_SCOPES,
    EmulatorServer,
    FaultConfig,
    ScopeDefinition,
    SupplierClient,
)
from fjord.maskinporten.keys import generate_jwk, public_jwks
from fjord.maskinporten.secret_format import MaskinportenSettings
from fjord.retry import RetryPolicy
from fjord.spec.infra import API_VERSION

REPO = Path(__file__).resolve().parents[1]
CRD = REPO / "deploy" / "crds" / "maskinportenclients.fjord.dev.yaml"
SCOPE = "bench:read"
NAMESPACE = "bench"


def peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


async def setup_cluster(kube: Kube) -> None:
    await kube.apply(yaml.safe_load(CRD.read_text()), field_manager="bench", force=True)
    await kube.wait_for(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "maskinportenclients.fjord.dev",
        until=lambda o: is_true(o, "Established"),
        timeout=60,
    )
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})


def ready_count(items: list[dict[str, Any]]) -> int:
    return sum(
        1
        for o in items
        if is_true(o, "Ready")
        and (o.get("status") or {}).get("observedGeneration") == o["metadata"].get("generation")
    )


async def operator_run(
    kube: Kube, op: processes.ProcessRecord, emulator: EmulatorServer, clients: int
) -> dict[str, Any]:
    state = emulator.state
    before = state.dump()
    started = time.monotonic()
    sem = asyncio.Semaphore(20)

    async def create(i: int) -> None:
        async with sem:
            await kube.create(
                {
                    "apiVersion": API_VERSION,
                    "kind": "MaskinportenClient",
                    "metadata": {"name": f"app{i:04d}", "namespace": NAMESPACE},
                    "spec": {"scopes": [SCOPE], "secretName": f"app{i:04d}-mp"},
                }
            )

    await asyncio.gather(*(create(i) for i in range(clients)))
    created_s = time.monotonic() - started
    samples: list[float] = []
    while True:
        items = await kube.items(API_VERSION, "MaskinportenClient", NAMESPACE)
        current = rss_mib(op.pid)
        if current is not None:
            samples.append(current)
        if ready_count(items) == clients:
            break
        if not processes.is_alive(op):
            raise RuntimeError("operator died:\n" + processes.log_tail(op.log))
        if time.monotonic() - started > 1800:
            raise RuntimeError(f"only {ready_count(items)}/{clients} Ready after 30 min")
        await asyncio.sleep(0.5)
    all_ready_s = time.monotonic() - started
    after = state.dump()
    # With latency on every call, the latency counter counts every request the emulator served.
    requests = after["faults_injected"].get("latency", 0) - before["faults_injected"].get(
        "latency", 0
    )
    tokens = after["counters"].get("token_requests", 0) - before["counters"].get(
        "token_requests", 0
    )
    registered = [c for c in after["clients"] if not c["bootstrap"]]
    # Quiet period: what a converged operator costs when nothing changes.
    quiet_before = after["faults_injected"].get("latency", 0)
    await asyncio.sleep(10)
    quiet_after = state.dump()["faults_injected"].get("latency", 0)
    return {
        "clients": clients,
        "create_crs_s": round(created_s, 2),
        "all_ready_s": round(all_ready_s, 2),
        "ready_per_s": round(clients / all_ready_s, 1),
        "peak_rss_mib": peak_rss_mib(op.pid),
        "rss_after_mib": rss_mib(op.pid),
        "digdir_clients_registered": len(registered),
        "digdir_calls_total": requests,
        "digdir_calls_per_client": round(requests / clients, 2),
        "selfservice_calls_per_client": round((requests - tokens) / clients, 2),
        "supplier_token_requests": tokens,
        "digdir_calls_in_10s_after_ready": quiet_after - quiet_before,
    }


async def token_client_run(kube: Kube, emulator: EmulatorServer, latency: float) -> dict[str, Any]:
    secret = await kube.get("v1", "Secret", "app0000-mp", NAMESPACE)
    assert secret is not None
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    settings = MaskinportenSettings.from_secret_data(data)
    result: dict[str, Any] = {}
    async with httpx2.AsyncClient(timeout=10) as http:
        client = MaskinportenClient(settings, http=http, retry=RetryPolicy(attempts=1))
        await client.get_token()
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < 2.0:
            for _ in range(1000):
                await client.get_token()
            calls += 1000
        result["cached_tokens_per_s"] = round(calls / (time.perf_counter() - started))
        for label, faults in (
            (f"fresh_grant_ms_with_{int(latency * 1000)}ms_latency", None),
            ("fresh_grant_ms_no_latency", FaultConfig()),
        ):
            if faults is not None:
                emulator.state.set_faults(faults)
            costs = []
            for _ in range(50):
                client.invalidate()
                t0 = time.perf_counter()
                await client.get_token()
                costs.append((time.perf_counter() - t0) * 1000)
            result[label] = {
                "median": round(statistics.median(costs), 2),
                "p90": round(sorted(costs)[int(len(costs) * 0.9)], 2),
            }
    return result


async def run_once(args: argparse.Namespace, operator_src: str | None) -> dict[str, Any]:
    supplier_key = generate_jwk("bench-supplier")
    supplier = SupplierClient(
        client_id="fjord-supplier", orgno="991825827", jwks=public_jwks([supplier_key])
    )
    faults = FaultConfig(latency_seconds=args.latency, latency_rate=1.0)
    root = Path(tempfile.mkdtemp(prefix="fjord-bench-mp-"))
    local = LocalCluster(root / "cluster", "bench-mp")
    with EmulatorServer(
        supplier=supplier, scopes=(ScopeDefinition(name=SCOPE),), faults=faults, seed=1
    ) as emulator:
        supplier_dir = root / "supplier"
        supplier_dir.mkdir()
        settings = MaskinportenSettings.for_issuer(
            issuer=emulator.issuer,
            client_id="fjord-supplier",
            jwk=supplier_key,
            scopes=list(ADMIN_SCOPES[:5]),
        )
        for key, value in settings.to_secret_data().items():
            (supplier_dir / key).write_text(value)
        state = local.up(nodes=1, flux=False)
        op: processes.ProcessRecord | None = None
        try:
            async with await Kube.connect(state.kubeconfig) as kube:
                await setup_cluster(kube)
                argv = [
                    sys.executable, "-m", "fjord.operators.common.main", "operator", "run",
                    "--only", "maskinporten", "-n", NAMESPACE,
                    "--kubeconfig", str(state.kubeconfig), "--liveness", "", "--metrics", "",
                    "--option", f"maskinporten.api-url={emulator.url}",
                    "--option", "maskinporten.client-orgno=310000001",
                    "--option", "maskinporten.platform-id=bench",
                    "--option", f"maskinporten.supplier-dir={supplier_dir}",
                    "--option", f"maskinporten.workers={args.workers}",
                ]  # fmt: skip
                env = {"PYTHONPATH": operator_src} if operator_src else None
                op = processes.start(
                    "maskinporten-operator", argv, log=root / "operator.log", env=env
                )
                load_before = load_average()
                operator = await operator_run(kube, op, emulator, args.clients)
                operator["load_average_before"] = load_before
                operator["load_average_after"] = load_average()
                tokens = await token_client_run(kube, emulator, args.latency)
        finally:
            if op is not None:
                processes.stop(op)
            local.down()
    return {"operator": operator, "token_client": tokens}


RATIOS = ("all_ready_s", "peak_rss_mib", "digdir_calls_per_client")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    head = {"benchmark": "maskinporten", "latency_s": args.latency, "workers": args.workers}
    if not args.baseline_src:
        return {**head, **await run_once(args, None)}
    baseline = await run_once(args, args.baseline_src)
    candidate = await run_once(args, None)
    return {
        **head,
        "baseline_src": args.baseline_src,
        **compare(baseline["operator"], candidate["operator"], RATIOS),
        "token_client": candidate["token_client"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--baseline-src", help="run the operator from this src/ first")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
