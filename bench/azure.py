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
alike. Prints one JSON document: medians per store and step, and Azure over OCI as ratios.

    .venv/bin/python bench/azure.py [--apps 30]
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

from cryptography.hazmat.primitives.asymmetric import ec

from fjord.devcluster.azurite import Azurite
from fjord.devcluster.registry import LocalRegistry
from fjord.releases import Release, build_release, publish
from fjord.stores import RegistryStore, Signer, Store
from fjord.stores.azure import AzureBlobStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from releases import REVISION, bench_platform, write_apps  # the sibling benchmark's apps

STORES = ("oci", "azure")
STEPS = ("push", "tag", "retag")
ENVIRONMENT = "tt02"


async def timed(samples: list[float], action: Callable[[], Awaitable[object]]) -> None:
    started = time.perf_counter()
    await action()
    samples.append(time.perf_counter() - started)


async def deploy_steps(
    store: Store, release: Release, signer: Signer, prefix: str, samples: dict[str, list[float]]
) -> None:
    repository = f"{prefix}/{release.repository}"
    await timed(
        samples["push"],
        lambda: publish(store, release, signer=signer, repository_prefix=prefix),
    )
    await timed(samples["tag"], lambda: store.tag(repository, release.digest, ENVIRONMENT))
    await timed(samples["retag"], lambda: store.tag(repository, release.digest, ENVIRONMENT))


async def publish_all(
    registry_url: str, connection_string: str, releases: list[Release], signer: Signer
) -> dict[str, dict[str, list[float]]]:
    samples = {name: {step: [] for step in STEPS} for name in STORES}
    async with (
        RegistryStore(registry_url) as oci,
        AzureBlobStore.from_connection_string(connection_string, "bench") as azure,
    ):
        stores: dict[str, Store] = {"oci": oci, "azure": azure}
        for index, release in enumerate(releases):
            order = STORES if index % 2 == 0 else STORES[::-1]
            for name in order:
                await deploy_steps(stores[name], release, signer, f"r{index}", samples[name])
    return samples


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


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
    medians = {name: {s: median_ms(v) for s, v in steps.items()} for name, steps in samples.items()}
    deploy = {name: round(m["push"] + m["tag"], 2) for name, m in medians.items()}
    print(
        json.dumps(
            {
                "apps": args.apps,
                "artifact_bytes_median": statistics.median(len(r.artifact.layer) for r in releases),
                "stores": {
                    "oci": "Debian docker-registry (Distribution 2.8) on loopback",
                    "azure": "Azurite 3.35 blob service on loopback (one container)",
                },
                "median_ms": medians,
                "push_plus_tag_ms": deploy,
                "azure_over_oci": {
                    **{s: round(medians["azure"][s] / medians["oci"][s], 3) for s in STEPS},
                    "push_plus_tag": round(deploy["azure"] / deploy["oci"], 3),
                },
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
