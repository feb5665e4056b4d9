"""Publish benchmark: fjord's ``publish`` against the same steps one request after another.

Prints one JSON document. Every side pushes the same release (the platform-app example, one
fresh repository per publish, so every blob is uploaded) and moves tag ``v1``, to one loopback
registry (Debian's ``docker-registry``, Distribution 2.8, started like ``bench/releases.py``
does), publish by publish, the sides interleaved in rotating order so the noise of a shared
machine hits all alike. Two pairs:

* ``unsigned``: **sequential** (the baseline) is what ``publish`` did before issue 17, through
  the same store primitives: per blob a HEAD, then the store's put (its own HEAD, POST, PUT),
  one blob after the other; the manifest; then before the tag a GET of the manifest and a HEAD
  per blob, one after the other; the tag PUT. **concurrent** (the candidate) is
  ``fjord.releases.publish`` as it is: the blobs' puts side by side with one existence check
  each, the manifest once all are stored, the tag's manifest read and blob checks side by side,
  the tag moved last.
* ``signed_window``: the same with signing as the control plane does it during the legacy
  migration window (bundle signature + signed provenance as referrers with the fallback index,
  and the legacy ``.sig``): sequentially as before issue 17, against ``publish`` now (the two
  referrers pushed side by side while the index is read; bundles and ``.sig`` side by side).

Reported per publish (medians): HTTP requests and busy stretches (stretches of time with at
least one request in flight: one per request when they go one after another; requests sent side
by side, even chains of them, count once; both counted on the transport: no noise), wall ms
(median, p90, min), CPU ms, ``concurrent / sequential`` ratios, and the load average before and
after.

    .venv/bin/python bench/publish.py [--publishes 30]
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
from cryptography.hazmat.primitives.asymmetric import ec

from bench_compare import compare, load_average
from fjord.artifact import Image
from fjord.artifact.bundle import (
    COSIGN_SIGN_PREDICATE,
    referrer_descriptor,
    referrer_image,
    referrers_index,
    referrers_tag,
    sign_statement,
    statement,
)
from fjord.artifact.digest import sha256_digest
from fjord.artifact.oci import OCI_INDEX, OCI_MANIFEST, parse_manifest, referenced_blobs
from fjord.artifact.provenance import SLSA_PROVENANCE_V1, predicate
from fjord.artifact.signing import signature_image, signature_tag
from fjord.devcluster.registry import LocalRegistry
from fjord.releases import Release, build_release, publish
from fjord.stores import Signer
from fjord.stores.registry import RegistryStore
from fjord.stores.signatures import subject_descriptor

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


async def sequential_push(
    store: RegistryStore, repository: str, image: Image, tag: str | None = None
) -> str:
    """``Store.push`` before issue 17: per blob a HEAD, then the put (its own HEAD, POST, PUT),
    one blob after the other; the manifest; the tag if asked."""
    for desc in referenced_blobs(image.document):
        if not await store._blob_exists(repository, desc["digest"]):
            await store._put_blob(repository, desc["digest"], image.blobs[desc["digest"]], ())
    await store._put_manifest(repository, image.digest, image.manifest, image.media_type)
    if tag is not None:
        await sequential_tag(store, repository, image.digest, tag)
    return image.digest


async def sequential_tag(store: RegistryStore, repository: str, digest: str, tag: str) -> None:
    """``Store.tag`` before issue 17: GET the manifest, then HEAD its blobs one by one."""
    manifest = await store._get_manifest(repository, digest)
    assert manifest is not None
    document = parse_manifest(manifest)
    for desc in referenced_blobs(document):
        assert await store._blob_exists(repository, desc["digest"])
    media_type = str(document.get("mediaType") or OCI_MANIFEST)
    await store._set_tag(repository, tag, digest, manifest, media_type)


async def sequential_sign(
    store: RegistryStore, repository: str, release: Release, signer: Signer
) -> None:
    """``sign`` before issue 17, migration window: the two bundles pushed one after the other,
    then the fallback index (read, written), then the legacy ``.sig``."""
    digest, subject = release.digest, subject_descriptor(release.artifact.manifest)
    assert signer.legacy_key is not None
    images = [
        referrer_image(subject, sign_statement(signer.key, statement(digest, kind, body)), kind)
        for kind, body in (
            (COSIGN_SIGN_PREDICATE, {}),
            (SLSA_PROVENANCE_V1, predicate(release.facts)),
        )
    ]
    for image in images:
        await sequential_push(store, repository, image)
    if await store.referrers_api(repository, digest) is None:
        listed = await store.fallback_referrers(repository, digest)
        index = referrers_index([*listed, *(referrer_descriptor(i) for i in images)])
        await store._put_manifest(repository, sha256_digest(index), index, OCI_INDEX)
        await store._set_tag(
            repository, referrers_tag(digest), sha256_digest(index), index, OCI_INDEX
        )
    await store.get_manifest(repository, digest)
    tag = signature_tag(digest)
    assert await store.resolve(repository, tag) is None  # a fresh repository
    sig = signature_image(digest, store.docker_reference(repository), signer.legacy_key, None)
    await sequential_push(store, repository, sig, tag=tag)


async def sequential_publish(
    store: RegistryStore, repository: str, release: Release, signer: Signer | None
) -> None:
    """``publish`` before issue 17, through the same store primitives."""
    await sequential_push(store, repository, release.artifact.image)
    if signer is not None:
        await sequential_sign(store, repository, release, signer)
    await sequential_tag(store, repository, release.digest, "v1")


# (side, signed): the baseline and candidate of each pair interleave with the other pair's.
SIDES = {
    "sequential": False,
    "concurrent": False,
    "sequential_signed": True,
    "concurrent_signed": True,
}


async def run(publishes: int, registry: LocalRegistry) -> dict[str, Any]:
    release = build_release(EXAMPLE, source="bench", revision="0" * 40)
    signer = Signer(
        key=ec.generate_private_key(ec.SECP256R1()),
        legacy_key=ec.generate_private_key(ec.SECP256R1()),  # the migration window (default)
    )
    wall: dict[str, list[float]] = {side: [] for side in SIDES}
    cpu: dict[str, list[float]] = {side: [] for side in SIDES}
    requests: dict[str, list[int]] = {side: [] for side in SIDES}
    rounds: dict[str, list[int]] = {side: [] for side in SIDES}
    transport = CountingTransport()
    names = list(SIDES)
    async with RegistryStore(registry.url, transport=transport) as store:
        await publish(store, release, signer=signer, tags=["warm-up"])  # connections, caches
        for index in range(publishes):
            for side in names[index % 4 :] + names[: index % 4]:
                signed = signer if SIDES[side] else None
                before, rounds_before = transport.requests, transport.rounds
                t, c = time.perf_counter(), time.process_time()
                if side.startswith("concurrent"):
                    await publish(
                        store,
                        release,
                        signer=signed,
                        tags=["v1"],
                        repository_prefix=f"{side}-{index}",
                    )
                else:
                    repository = f"{side.replace('_', '-')}-{index}/{release.repository}"
                    await sequential_publish(store, repository, release, signed)
                wall[side].append(time.perf_counter() - t)
                cpu[side].append(time.process_time() - c)
                requests[side].append(transport.requests - before)
                rounds[side].append(transport.rounds - rounds_before)
    result = {side: summary(wall[side], cpu[side], requests[side], rounds[side]) for side in SIDES}
    keys = list(result["sequential"])
    return {
        "unsigned": compare(result["sequential"], result["concurrent"], keys),
        "signed_window": compare(result["sequential_signed"], result["concurrent_signed"], keys),
    }


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
    parser.add_argument("--publishes", type=int, default=30, help="publishes per side")
    args = parser.parse_args()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="fjord-bench-publish-") as work:
        registry = LocalRegistry.start(Path(work) / "registry")
        try:
            result = asyncio.run(run(args.publishes, registry))
        finally:
            registry.stop()
    result["baseline_is"] = "sequential: publish before issue 17"
    result["candidate_is"] = "concurrent: publish now"
    for pair in ("unsigned", "signed_window"):
        result[f"{pair}_sequential_over_concurrent_wall_median"] = round(
            result[pair]["baseline"]["wall_ms_median"]
            / result[pair]["candidate"]["wall_ms_median"],
            2,
        )
    result["publishes_per_side"] = args.publishes
    result["load_average_before"] = load_before
    result["load_average_after"] = load_average()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
