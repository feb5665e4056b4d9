"""Publish benchmark: fjord's ``publish`` against the same steps one request after another.

Prints one JSON document. Both sides push the same release (the platform-app example, one fresh
repository per publish, so every blob is uploaded) to one loopback registry (Debian's
``docker-registry``, started like ``bench/releases.py`` does), publish by publish, interleaved in
alternating order, so the noise of a shared machine hits both alike:

* **sequential** (the baseline): what ``publish`` did before issue 17: per blob a HEAD, then the
  store's put (its own HEAD, POST, PUT), one blob after the other; the manifest; then, before
  the tag, a GET of the manifest and a HEAD per blob, one after the other; the tag PUT;
* **concurrent** (the candidate): ``fjord.releases.publish`` as it is (the blobs' puts side by
  side with one existence check each, the manifest once all are stored, the tag's manifest read
  and blob checks side by side, the tag moved last).

Reported per publish (medians): HTTP requests and busy stretches (stretches of time with at
least one request in flight: one per request when they go one after another; requests sent side
by side, even chains of them, count once; both counted on the transport), wall ms
(median, p90, min), CPU ms, ``concurrent / sequential`` ratios, and the load average before and
after.

    .venv/bin/python bench/publish.py [--publishes 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

from bench_compare import compare, load_average
from fjord.devcluster.registry import LocalRegistry
from fjord.releases import Release, build_release, publish
from fjord.stores.registry import RegistryStore

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "platform-app"


class CountingTransport(httpx2.AsyncHTTPTransport):
    """Counts requests, and the stretches of time during which at least one was in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0
        self.rounds = 0
        self._in_flight = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests += 1
        if self._in_flight == 0:
            self.rounds += 1
        self._in_flight += 1
        try:
            return await super().handle_async_request(request)
        finally:
            self._in_flight -= 1


async def sequential_publish(store: RegistryStore, repository: str, release: Release) -> None:
    """The previous ``Store.push`` + ``Store.tag``, step by step, through the same primitives."""
    image = release.artifact.image
    blobs = [d["digest"] for d in [image.document["config"], *image.document["layers"]]]
    for digest in blobs:
        if not await store._blob_exists(repository, digest):
            await store._put_blob(repository, digest, image.blobs[digest], ())
    await store._put_manifest(repository, image.digest, image.manifest, image.media_type)
    manifest = await store._get_manifest(repository, image.digest)
    assert manifest == image.manifest
    for digest in blobs:
        assert await store._blob_exists(repository, digest)
    await store._set_tag(repository, "v1", image.digest, image.manifest, image.media_type)


SIDES = ("sequential", "concurrent")


async def run(publishes: int, registry: LocalRegistry) -> dict[str, Any]:
    release = build_release(EXAMPLE, source="bench", revision="0" * 40)
    wall: dict[str, list[float]] = {side: [] for side in SIDES}
    cpu: dict[str, list[float]] = {side: [] for side in SIDES}
    requests: dict[str, list[int]] = {side: [] for side in SIDES}
    rounds: dict[str, list[int]] = {side: [] for side in SIDES}
    transport = CountingTransport()
    async with RegistryStore(registry.url, transport=transport) as store:
        await publish(store, release, tags=["warm-up"])  # connections open, caches warm
        for index in range(publishes):
            for side in SIDES if index % 2 else reversed(SIDES):
                before, rounds_before = transport.requests, transport.rounds
                t, c = time.perf_counter(), time.process_time()
                if side == "concurrent":
                    await publish(store, release, tags=["v1"], repository_prefix=f"{side}-{index}")
                else:
                    repository = f"{side}-{index}/{release.repository}"
                    await sequential_publish(store, repository, release)
                wall[side].append(time.perf_counter() - t)
                cpu[side].append(time.process_time() - c)
                requests[side].append(transport.requests - before)
                rounds[side].append(transport.rounds - rounds_before)
    result = {side: summary(wall[side], cpu[side], requests[side], rounds[side]) for side in SIDES}
    return compare(result["sequential"], result["concurrent"], list(result["sequential"]))


def summary(
    wall: list[float], cpu: list[float], requests: list[int], rounds: list[int]
) -> dict[str, float]:
    ordered = sorted(wall)
    return {
        "requests_per_publish": statistics.median(requests),
        "busy_stretches_per_publish": statistics.median(rounds),
        "wall_ms_median": round(statistics.median(ordered) * 1000, 2),
        "wall_ms_p90": round(ordered[int(len(ordered) * 0.9)] * 1000, 2),
        "wall_ms_min": round(ordered[0] * 1000, 2),
        "cpu_ms_median": round(statistics.median(cpu) * 1000, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--publishes", type=int, default=60, help="publishes per side")
    args = parser.parse_args()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="fjord-bench-publish-") as work:
        registry = LocalRegistry.start(Path(work) / "registry")
        try:
            result = asyncio.run(run(args.publishes, registry))
        finally:
            registry.stop()
    result["baseline_is"] = "sequential (publish before issue 17)"
    result["candidate_is"] = "concurrent (publish now)"
    result["sequential_over_concurrent_wall_median"] = round(
        result["baseline"]["wall_ms_median"] / result["candidate"]["wall_ms_median"], 2
    )
    result["publishes_per_side"] = args.publishes
    result["load_average_before"] = load_before
    result["load_average_after"] = load_average()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
