"""What digest-bound signing costs per release: bundle signing on versus off, one run.

Per app (the bench platform's apps from ``bench/releases.py``): ``build_release`` once (timed:
the build time the cost is compared with), then ``publish`` to a loopback registry (Debian's
Distribution 2.8, so bundles go through the referrers fallback tag) in three modes, each into a
fresh repository so every mode uploads the same artifact from scratch:

* ``legacy``: the `.sig` only (what fjord wrote before bundles);
* ``window``: bundle signature + signed SLSA provenance + legacy `.sig` (the migration window);
* ``bundles``: bundle signature + provenance, no `.sig` (after the window).

The modes run interleaved app by app, in rotating order, so a shared machine's noise hits all
alike. Prints one JSON document; the ratios to read are the extra publish time of ``window`` and
``bundles`` over ``legacy``, per release and as a share of the build time.

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

from cryptography.hazmat.primitives.asymmetric import ec

from fjord.artifact.bundle import COSIGN_SIGN_PREDICATE, sign_statement, statement
from fjord.devcluster.registry import LocalRegistry
from fjord.releases import Release, build_release, publish
from fjord.stores import RegistryStore, Signer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from releases import bench_platform, write_apps  # the sibling benchmark's apps

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


async def publish_all(
    url: str,
    releases: list[Release],
    key: ec.EllipticCurvePrivateKey,
    legacy: ec.EllipticCurvePrivateKey,
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    async with RegistryStore(url) as store:
        for index, release in enumerate(releases):
            order = MODES[index % 3 :] + MODES[: index % 3]
            for mode in order:
                started = time.perf_counter()
                await publish(
                    store, release, signer=signer(mode, key, legacy), repository_prefix=mode
                )
                times[mode].append(time.perf_counter() - started)
    return times


def signing_cpu(key: ec.EllipticCurvePrivateKey, rounds: int = 200) -> float:
    """Seconds of CPU for one bundle signature alone (statement + DSSE + bundle JSON)."""
    payload = statement("sha256:" + "ab" * 32, COSIGN_SIGN_PREDICATE, {})
    started = time.process_time()
    for _ in range(rounds):
        sign_statement(key, payload)
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
        releases: list[Release] = []
        for app_dir in dirs:
            started = time.perf_counter()
            releases.append(
                build_release(
                    app_dir,
                    source=str(app_dir),
                    revision="main@sha1:" + "0" * 40,
                    platform=platform,
                )
            )
            builds.append(time.perf_counter() - started)
        registry = LocalRegistry.start(root / "registry")
        try:
            times = asyncio.run(publish_all(registry.url, releases, key, legacy))
        finally:
            registry.stop()
    build_ms = median_ms(builds)
    publish_ms = {mode: median_ms(samples) for mode, samples in times.items()}
    extra = {
        mode: round(publish_ms[mode] - publish_ms["legacy"], 2) for mode in ("window", "bundles")
    }
    print(
        json.dumps(
            {
                "apps": args.apps,
                "registry": "Debian docker-registry (Distribution 2.8, referrers fallback tag)",
                "build_ms_median": build_ms,
                "publish_ms_median": publish_ms,
                "extra_publish_ms_over_legacy": extra,
                "extra_share_of_build": {
                    mode: round(value / build_ms, 4) for mode, value in extra.items()
                },
                "publish_ratio_over_legacy": {
                    mode: round(publish_ms[mode] / publish_ms["legacy"], 3)
                    for mode in ("window", "bundles")
                },
                "bundle_sign_cpu_ms": round(signing_cpu(key) * 1000, 3),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
