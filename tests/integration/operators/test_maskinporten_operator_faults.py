"""The Maskinporten operator under failing Digdir calls and under SIGKILL at random points."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from conftest_maskinporten import (
    OTHER,
    READ,
    WRITE,
    Operator,
    create_client,
    emulator_clients,
    identity,
    key_accepted,
    mp_crd,
    mp_emulator,
    mp_emulator_server,
    mp_supplier_key,
    operator,
    operator_for,
    read_settings,
    request_rotation,
    set_scopes,
    supplier_dir,
    token_for,
    wait_ready,
)

from fjord.devcluster.cluster import ClusterState
from fjord.kube import Kube
from fjord.maskinporten.emulator import EmulatorServer, FaultConfig
from fjord.spec.infra import API_VERSION

pytestmark = pytest.mark.cluster
__all__ = ["mp_crd", "mp_emulator", "mp_emulator_server", "mp_supplier_key", "operator"]
__all__ += ["supplier_dir"]

FLAKY = FaultConfig(error_rate=0.15, error_status=503, rate_limit_rate=0.15, retry_after=1)


class SecretWatch:
    """Checks, continuously, that every Secret's active key is one the emulator accepts."""

    def __init__(self, kube: Kube, namespace: str, emulator: EmulatorServer, names: list[str]):
        self.kube, self.namespace, self.emulator, self.names = kube, namespace, emulator, names
        self.violations: list[str] = []
        self.checks = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            for name in self.names:
                settings = await read_settings(self.kube, self.namespace, f"{name}-maskinporten")
                if settings is None:
                    continue
                problem = key_accepted(self.emulator, settings)
                self.checks += 1
                if problem is not None:
                    self.violations.append(f"{name}: {problem}")
            await asyncio.sleep(0.02)

    def start(self) -> SecretWatch:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


async def test_converges_with_30_percent_of_digdir_calls_failing(
    kube: Kube, namespace: str, mp_emulator: EmulatorServer, operator: Operator
) -> None:
    names = [f"app{i}" for i in range(5)]
    mp_emulator.state.set_faults(FLAKY)
    operator.start()
    watch = SecretWatch(kube, namespace, mp_emulator, names).start()
    for name in names:
        await create_client(kube, name, namespace, [READ])
    for name in names:
        await wait_ready(kube, name, namespace, timeout=180, op=operator)
    for name in names:
        await set_scopes(kube, name, namespace, [READ, WRITE])
    for name in names:
        await wait_ready(kube, name, namespace, timeout=180, op=operator)
    values = {name: await request_rotation(kube, name, namespace) for name in names}
    for name, value in values.items():
        cr = await wait_ready(kube, name, namespace, timeout=180, op=operator)
        while (cr.get("status") or {}).get("rotationRequest") != value:
            await asyncio.sleep(0.2)
            cr = await kube.get(API_VERSION, "MaskinportenClient", name, namespace) or {}
    await watch.stop()
    injected = mp_emulator.state.dump()["faults_injected"]
    assert injected.get("503", 0) > 0
    assert injected.get("429", 0) > 0
    assert watch.violations == []
    assert watch.checks > 0

    clients = emulator_clients(mp_emulator)
    assert sorted(c["description"] for c in clients) == sorted(
        identity(namespace, n) for n in names
    )
    assert all(sorted(c["scopes"]) == [READ, WRITE] for c in clients)
    mp_emulator.state.set_faults(FaultConfig())
    for name in names:
        settings = await read_settings(kube, namespace, f"{name}-maskinporten")
        assert settings is not None
        assert len(settings.all_keys()) == 2
        await token_for(settings, [WRITE])


async def test_sigkill_at_random_points_leaves_no_duplicate_or_orphan(
    cluster: ClusterState,
    kube: Kube,
    namespace: str,
    mp_emulator: EmulatorServer,
    supplier_dir: Path,
    tmp_path: Path,
    mp_crd: None,
) -> None:
    rng = random.Random(20261121)
    # Slow every call a little, so kills land between "create client" and "record its id".
    mp_emulator.state.set_faults(FaultConfig(latency_seconds=0.03, latency_rate=1.0))
    op = operator_for(cluster, namespace, mp_emulator, supplier_dir, tmp_path / "op.log")
    live: set[str] = set()
    counter = 0
    try:
        for run in range(50):
            # Change the world while the operator is dead or just starting.
            action = rng.choice(["create", "create", "scopes", "rotate", "delete"])
            if action == "create" or not live:
                counter += 1
                name = f"c{counter}"
                await create_client(kube, name, namespace, [READ])
                live.add(name)
            elif action == "scopes":
                await set_scopes(kube, rng.choice(sorted(live)), namespace, [READ, OTHER])
            elif action == "rotate":
                await request_rotation(kube, rng.choice(sorted(live)), namespace)
            else:
                name = rng.choice(sorted(live))
                await kube.delete(API_VERSION, "MaskinportenClient", name, namespace)
                live.discard(name)
            op.start()
            await asyncio.sleep(rng.uniform(0.8, 3.0))
            op.kill()
            assert op.starts == run + 1

        op.start()
        for name in sorted(live):
            await wait_ready(kube, name, namespace, timeout=120, op=op)

        async def deleted_gone() -> bool:
            return len(await kube.items(API_VERSION, "MaskinportenClient", namespace)) == len(live)

        deadline = asyncio.get_running_loop().time() + 60
        while not await deleted_gone():
            assert asyncio.get_running_loop().time() < deadline, op.tail()
            await asyncio.sleep(0.2)

        clients = emulator_clients(mp_emulator)
        descriptions = sorted(c["description"] for c in clients)
        # No duplicate (one client per live CR) and no orphan (none for a deleted CR).
        assert descriptions == sorted(identity(namespace, n) for n in live)
        for name in live:
            settings = await read_settings(kube, namespace, f"{name}-maskinporten")
            assert settings is not None
            assert key_accepted(mp_emulator, settings) is None
        mp_emulator.state.set_faults(FaultConfig())
        for name in sorted(live)[:3]:
            settings = await read_settings(kube, namespace, f"{name}-maskinporten")
            assert settings is not None
            await token_for(settings)
    finally:
        from conftest_maskinporten import cleanup

        await cleanup(cluster, namespace, op, mp_emulator)
        op.stop()
