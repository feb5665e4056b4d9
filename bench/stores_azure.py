"""Publishing the same release to Azure Blob Storage (Azurite) and to an OCI registry, one run.

Per app (the bench platform's apps from ``bench/releases.py``): ``build_release`` once, then in
each store what a deploy's store steps do (``control/publishing.py``):

* ``push``: ``publish`` (blobs, manifest, bundle signature, signed provenance, the legacy
  `.sig` of the migration window), no tag moves;
* ``tag``: the environment tag ``tt02`` moves; in Azure this also writes the tag's tree, the
  one blob Flux's Bucket source reads (``fjord.stores.azure``);
* ``retag``: the same tag again (a no-op deploy: Azure compares the tree's hash and rewrites
  nothing).

Each store gets a fresh repository per app, so both upload the same artifact from scratch. The
stores run interleaved app by app, in alternating order, so a shared machine's noise hits both
alike. Requests are counted on each client's transport (noise-free). Prints one JSON document:
medians per store and step (time and requests), and Azure over OCI as ratios.

    .venv/bin/python bench/stores_azure.py [--apps 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx2
from azure.core.pipeline import PipelineRequest
from azure.storage.blob.aio import ContainerClient
from cryptography.hazmat.primitives.asymmetric import ec

from fjord.devcluster.azurite import Azurite
from fjord.devcluster.registry import LocalRegistry
from fjord.releases import Release, build_release, publish
from fjord.stores import RegistryStore, Signer, Store
from fjord.stores.azure import DEFAULT_API_VERSION, AzureBlobStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from releases import REVISION, bench_platform, write_apps  # the sibling benchmark's apps

STORES = ("oci", "azure")
STEPS = ("push", "tag", "retag")
ENVIRONMENT = "tt02"


class Counter:
    """Requests a store's client sent (both clients call it once per HTTP request)."""

    def __init__(self) -> None:
        self.count = 0

    def azure_hook(self, _request: PipelineRequest) -> None:  # type: ignore[type-arg]
        self.count += 1


class CountingTransport(httpx2.AsyncBaseTransport):
    def __init__(self, counter: Counter) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.counter = counter

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.counter.count += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


Samples = dict[str, dict[str, list[float]]]


async def measured(
    samples: Samples, step: str, counter: Counter, action: Callable[[], Awaitable[object]]
) -> None:
    before, started = counter.count, time.perf_counter()
    await action()
    samples["ms"][step].append((time.perf_counter() - started) * 1000)
    samples["requests"][step].append(counter.count - before)


async def deploy_steps(
    store: Store, counter: Counter, release: Release, signer: Signer, prefix: str, samples: Samples
) -> None:
    repository = f"{prefix}/{release.repository}"

    def push() -> Awaitable[object]:
        return publish(store, release, signer=signer, repository_prefix=prefix)

    def tag() -> Awaitable[object]:
        return store.tag(repository, release.digest, ENVIRONMENT)

    await measured(samples, "push", counter, push)
    await measured(samples, "tag", counter, tag)
    await measured(samples, "retag", counter, tag)


async def publish_all(
    registry_url: str, connection_string: str, releases: list[Release], signer: Signer
) -> dict[str, Samples]:
    samples = {
        name: {what: {step: [] for step in STEPS} for what in ("ms", "requests")} for name in STORES
    }
    counters = {name: Counter() for name in STORES}
    container = ContainerClient.from_connection_string(
        connection_string,
        "bench",
        api_version=DEFAULT_API_VERSION,
        raw_request_hook=counters["azure"].azure_hook,
    )
    async with (
        RegistryStore(registry_url, transport=CountingTransport(counters["oci"])) as oci,
        AzureBlobStore(container) as azure,
    ):
        stores: dict[str, Store] = {"oci": oci, "azure": azure}
        for index, release in enumerate(releases):
            order = STORES if index % 2 == 0 else STORES[::-1]
            for name in order:
                await deploy_steps(
                    stores[name], counters[name], release, signer, f"r{index}", samples[name]
                )
    return samples


def median(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=30)
    args = parser.parse_args()
    platform = bench_platform()
    signer = Signer(
        key=ec.generate_private_key(ec.SECP256R1()),
        legacy_key=ec.generate_private_key(ec.SECP256R1()),
    )
    with tempfile.TemporaryDirectory(prefix="fjord-bench-azure-") as tmp:
        root = Path(tmp)
        releases = [
            build_release(app_dir, source=str(app_dir), revision=REVISION, platform=platform)
            for app_dir in write_apps(root / "apps", args.apps, with_chart=False)
        ]
        registry = LocalRegistry.start(root / "registry")
        try:
            with Azurite.start(root / "azurite") as azurite:
                samples = asyncio.run(
                    publish_all(registry.url, azurite.connection_string, releases, signer)
                )
        finally:
            registry.stop()
    medians = {
        name: {what: {s: median(v) for s, v in steps.items()} for what, steps in kinds.items()}
        for name, kinds in samples.items()
    }
    ms = {name: m["ms"] for name, m in medians.items()}
    deploy = {name: round(m["push"] + m["tag"], 2) for name, m in ms.items()}
    print(
        json.dumps(
            {
                "apps": args.apps,
                "artifact_bytes_median": statistics.median(len(r.artifact.layer) for r in releases),
                "stores": {
                    "oci": "Debian docker-registry (Distribution 2.8) on loopback",
                    "azure": "Azurite 3.35 blob service on loopback (one container)",
                },
                "median_ms": ms,
                "median_requests": {name: m["requests"] for name, m in medians.items()},
                "push_plus_tag_ms": deploy,
                "azure_over_oci_ms": {
                    **{s: round(ms["azure"][s] / ms["oci"][s], 3) for s in STEPS},
                    "push_plus_tag": round(deploy["azure"] / deploy["oci"], 3),
                },
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
