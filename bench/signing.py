"""What digest-bound signing costs per release: bundle signing on versus off, one run.

Per app (the bench platform's apps from ``bench/releases.py``): ``build_release`` once (timed:
the build time the cost is compared with), then ``publish`` to a loopback registry (Debian's
Distribution 2.8, so bundles go through the referrers fallback tag) in three modes, each into a
fresh repository so every mode uploads the same artifact from scratch:

* ``legacy``: the `.sig` only (what fjord wrote before bundles);
* ``window``: bundle signature + signed SLSA provenance + legacy `.sig` (the migration window);
* ``bundles``: bundle signature + provenance, no `.sig` (after the window).

The modes run interleaved app by app, in rotating order, so a shared machine's noise hits all
alike. Prints one JSON document: per mode the publish time and the number of registry requests
(noise-free), the extra over ``legacy``, and the CPU that bundle signing itself takes per release
(signature + provenance statements, DSSE signatures, referrer manifests and the fallback index,
no I/O) next to the build's CPU.

    .venv/bin/python bench/signing.py [--apps 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx2
from cryptography.hazmat.primitives.asymmetric import ec

from fjord.artifact.bundle import (
    COSIGN_SIGN_PREDICATE,
    referrer_descriptor,
    referrer_image,
    referrers_index,
    sign_statement,
    statement,
)
from fjord.artifact.provenance import SLSA_PROVENANCE_V1, predicate
from fjord.devcluster.registry import LocalRegistry
from fjord.releases import Release, build_release, publish
from fjord.stores import RegistryStore, Signer
from fjord.stores.signatures import subject_descriptor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from releases import REVISION, bench_platform, write_apps  # the sibling benchmark's apps

MODES = ("legacy", "window", "bundles")


def signer(
    mode: str, key: ec.EllipticCurvePrivateKey, legacy: ec.EllipticCurvePrivateKey
) -> Signer:
    if mode == "legacy":
        return Signer(key=key, legacy_key=legacy, bundles=False)
    if mode == "window":
        return Signer(key=key, legacy_key=legacy)
    return Signer(key=key)


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


class CountingTransport(httpx2.AsyncBaseTransport):
    """Counts the registry requests a publish makes (the cost that noise does not blur)."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.count = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.count += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def publish_all(
    url: str,
    releases: list[Release],
    key: ec.EllipticCurvePrivateKey,
    legacy: ec.EllipticCurvePrivateKey,
) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    requests: dict[str, list[int]] = {mode: [] for mode in MODES}
    transport = CountingTransport()
    async with RegistryStore(url, transport=transport) as store:
        for index, release in enumerate(releases):
            order = MODES[index % 3 :] + MODES[: index % 3]
            for mode in order:
                before = transport.count
                started = time.perf_counter()
                await publish(
                    store, release, signer=signer(mode, key, legacy), repository_prefix=mode
                )
                times[mode].append(time.perf_counter() - started)
                requests[mode].append(transport.count - before)
    return times, requests


def bundle_cpu(release: Release, key: ec.EllipticCurvePrivateKey, rounds: int = 50) -> float:
    """CPU seconds per release for everything bundle signing computes (no I/O)."""
    subject = subject_descriptor(release.artifact.manifest)
    started = time.process_time()
    for _ in range(rounds):
        images = [
            referrer_image(
                subject, sign_statement(key, statement(release.digest, kind, body)), kind
            )
            for kind, body in (
                (COSIGN_SIGN_PREDICATE, {}),
                (SLSA_PROVENANCE_V1, predicate(release.facts)),
            )
        ]
        referrers_index([referrer_descriptor(image) for image in images])
    return (time.process_time() - started) / rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=40)
    args = parser.parse_args()
    platform = bench_platform()
    key = ec.generate_private_key(ec.SECP256R1())
    legacy = ec.generate_private_key(ec.SECP256R1())
    with tempfile.TemporaryDirectory(prefix="fjord-bench-signing-") as tmp:
        root = Path(tmp)
        dirs = write_apps(root / "apps", args.apps, with_chart=False)
        builds: list[float] = []
        build_cpu: list[float] = []
        releases: list[Release] = []
        for app_dir in dirs:
            started, cpu = time.perf_counter(), time.process_time()
            releases.append(
                build_release(app_dir, source=str(app_dir), revision=REVISION, platform=platform)
            )
            builds.append(time.perf_counter() - started)
            build_cpu.append(time.process_time() - cpu)
        registry = LocalRegistry.start(root / "registry")
        try:
            times, requests = asyncio.run(publish_all(registry.url, releases, key, legacy))
        finally:
            registry.stop()
    build_ms = median_ms(builds)
    build_cpu_ms = median_ms(build_cpu)
    signing_cpu_ms = round(statistics.median(bundle_cpu(r, key) for r in releases[:10]) * 1000, 3)
    publish_ms = {mode: median_ms(samples) for mode, samples in times.items()}
    request_counts = {mode: statistics.median(samples) for mode, samples in requests.items()}
    later = ("window", "bundles")
    print(
        json.dumps(
            {
                "apps": args.apps,
                "registry": "Debian docker-registry (Distribution 2.8, referrers fallback tag)",
                "build_ms_median": {"wall": build_ms, "cpu": build_cpu_ms},
                "bundle_signing_cpu_ms_per_release": signing_cpu_ms,
                "bundle_signing_cpu_share_of_build_cpu": round(signing_cpu_ms / build_cpu_ms, 4),
                "publish_ms_median": publish_ms,
                "publish_ratio_over_legacy": {
                    m: round(publish_ms[m] / publish_ms["legacy"], 3) for m in later
                },
                "extra_publish_ms_over_legacy": {
                    m: round(publish_ms[m] - publish_ms["legacy"], 2) for m in later
                },
                "registry_requests_per_publish": request_counts,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
