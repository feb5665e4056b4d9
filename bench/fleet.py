"""Rollouts in waves: what a rollout to 20 clusters costs the control plane against 1 cluster,
and how long the wave machinery adds beyond the configured soak. Prints JSON.

The control plane runs in this process on SQLite with a local store (the store's writes and
reads are counted by wrapping its primitive operations; SQL statements by an engine event).
Clusters are simulated by what they send back: as soon as a cluster's tag moves, a signed Flux
``ReconciliationSucceeded`` event for that digest is ingested through the same code path the
HTTP endpoint uses (``events.ingest``). So the counts are the control plane's own; Flux's pulls
are not in them (they go to the registry, not to fjord).

    .venv/bin/python bench/fleet.py [--clusters 20] [--soak 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import gitea_support  # noqa: E402
from fjord.control import (  # noqa: E402
    ControlPlane,
    ControlSettings,
    apps,
    clusters,
    credentials,
    deploys,
    events,
    queries,
    system_actor,
)
from fjord.control.worker import drain  # noqa: E402
from fjord.spec import default_platform  # noqa: E402
from fjord.spec.platform import (  # noqa: E402
    Cluster,
    Environment,
    IngressRouting,
    Org,
    Rollout,
    Wave,
)
from fjord.stores.local import LocalStore  # noqa: E402

ADMIN = system_actor("bench")
COUNTED = ("_put_blob", "_put_manifest", "_set_tag", "_blob_exists", "_resolve", "_get_manifest")


class Counts:
    def __init__(self) -> None:
        self.store: Counter[str] = Counter()
        self.bytes_uploaded = 0
        self.sql = 0


CURRENT = [Counts()]  # what the wrapped store operations count into now


def instrument() -> None:
    for name in COUNTED:
        original = getattr(LocalStore, name)

        async def wrapped(self: Any, *args: Any, _o: Any = original, _n: str = name) -> Any:
            counts = CURRENT[0]
            counts.store[_n] += 1
            if _n == "_put_blob":
                counts.bytes_uploaded += len(args[2])
            return await _o(self, *args)

        setattr(LocalStore, name, wrapped)


def platform(names: list[str], soak: int) -> Any:
    rollout = Rollout(
        waves=[Wave(percent=10), Wave(percent=40)] if len(names) > 1 else [Wave(percent=100)],
        soak_seconds=soak,
    )
    return default_platform().model_copy(
        update={
            "environments": [Environment(name="tt02", rollout=rollout), Environment(name="prod")],
            "orgs": {"ttd": Org(clusters={"tt02": [Cluster(name=n) for n in names]})},
            "routing": IngressRouting(flavour="ingress"),
        }
    )


def body(name: str, digest: str, n: int) -> bytes:
    return json.dumps(
        {
            "involvedObject": {
                "kind": "Kustomization",
                "namespace": "ttd-skjema",
                "name": "skjema",
            },
            "severity": "info",
            "timestamp": f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z",
            "reason": "ReconciliationSucceeded",
            "message": "Reconciliation finished",
            "metadata": {"revision": f"tt02.{name}@{digest}"},
        }
    ).encode()


async def rollout(cluster_count: int, soak: int, repo_url: str, token: str) -> dict[str, Any]:
    names = [f"c{i:02}" for i in range(cluster_count)]
    with tempfile.TemporaryDirectory() as tmp:
        settings = ControlSettings(
            data_dir=Path(tmp), platform=platform(names, soak), poll_seconds=0.05
        )
        plane = await ControlPlane.open(settings)
        try:
            await credentials.set_credential(plane, ADMIN, "ttd", token)
            await apps.create_app(plane, ADMIN, "ttd/skjema", repo_url)
            tokens = {}
            for name in names:
                await clusters.bootstrap(plane, ADMIN, "ttd", "tt02", name)
                tokens[name] = await clusters.cluster_token(plane, ADMIN, f"ttd.tt02.{name}")
            counts = Counts()
            CURRENT[0] = counts

            def count(*_: Any) -> None:
                counts.sql += 1

            # Counted from the request on (the build is the same for 1 or 20 clusters).
            event.listen(plane.db.engine.sync_engine, "before_cursor_execute", count)
            requested = await deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02")
            reported: set[str] = set()
            sequence = 0
            started = time.monotonic()
            while True:
                await drain(plane)
                view = await queries.get_deployment(plane, ADMIN, requested.id)
                if view.state in ("progressing", "ready", "failed", "halted"):
                    break
                for wave in view.rollout.waves if view.rollout else []:
                    if wave.started_at is None:
                        continue
                    for cluster in wave.clusters:
                        name = cluster.rsplit(".", 1)[1]
                        if name not in reported and view.digest:
                            reported.add(name)
                            sequence += 1
                            data = body(name, view.digest, sequence)
                            await events.ingest(
                                plane, cluster, data, events.sign(tokens[name], data)
                            )
                await asyncio.sleep(0.01)
            elapsed = time.monotonic() - started
            event.remove(plane.db.engine.sync_engine, "before_cursor_execute", count)
            assert view.rollout is not None, view
            waves = view.rollout.waves
            overheads = [
                (w.finished_at - w.started_at).total_seconds() - w.soak_seconds  # type: ignore[operator]
                for w in waves
            ]
            return {
                "clusters": cluster_count,
                "waves": len(waves),
                "state": view.state,
                "seconds": round(elapsed, 2),
                "sql_statements": counts.sql,
                "store": dict(counts.store),
                "bytes_uploaded": counts.bytes_uploaded,
                "wave_overhead_seconds": [round(o, 3) for o in overheads],
            }
        finally:
            await plane.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--soak", type=int, default=1)
    args = parser.parse_args()
    instrument()
    gitea = gitea_support.shared()
    try:
        repo = gitea.push_app("ttd", "platform-app", name="skjema")
        token = gitea.tokens["ttd"]
        one = await rollout(1, args.soak, repo.clone_url, token)
        many = await rollout(args.clusters, args.soak, repo.clone_url, token)
    finally:
        gitea_support.stop_shared()
    store_one = sum(one["store"].values())
    store_many = sum(many["store"].values())

    def ratio(key: str) -> float:
        return round(many[key] / max(1, one[key]), 2)

    print(
        json.dumps(
            {
                "one_cluster": one,
                f"{args.clusters}_clusters": many,
                "ratios": {
                    "bytes_uploaded": round(
                        many["bytes_uploaded"] / max(1, one["bytes_uploaded"]), 2
                    ),
                    "store_operations": round(store_many / max(1, store_one), 2),
                    "sql_statements": round(
                        many["sql_statements"] / max(1, one["sql_statements"]), 2
                    ),
                },
                "max_wave_overhead_seconds": max(
                    one["wave_overhead_seconds"] + many["wave_overhead_seconds"]
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
