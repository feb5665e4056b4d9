"""Git sources benchmark: what a release costs for a big repository, through the bare mirror.

Prints one JSON document:

- ``fetch``: a repository in the real Gitea with ``--commits`` commits (default 1000) and about
  ``--history-mb`` MB of history (default 50: every commit rewrites one of ten 50 KB random,
  incompressible files; ``fjord.yaml`` of the platform-app example at the top). Measured:
  ``first`` — a new mirror: fetch everything, resolve ``main``, read ``fjord.yaml``, render and
  pack (``resolve_s`` is the fetch + resolve, ``render_s`` the rest); ``incremental`` — after one
  more small commit is pushed, the same again (median and all of ``--rounds`` rounds);
  ``noop`` — nothing new upstream (a fetch that transfers nothing). ``mirror_mb``: the mirror's
  size on disk afterwards.
- ``tag_to_ready`` (unless ``--skip-ready``): one local cluster with Flux, a registry, the
  control plane (in this process, warm) and Gitea; app ``ttd/skjema`` registered by repository
  with the rule ``main → tt02`` (webhook) and the cluster's Receiver set. Each of ``--ready-rounds``
  rounds (default 10) pushes one commit to main and a tag (``git push`` of both, as a release
  does) and measures from the push to the webhook's deployment of that commit being Ready in
  tt02 (state polled every 0.1 s): median, min, max and every round.

    .venv/bin/python bench/gitea.py [--commits 1000] [--history-mb 50] [--rounds 5]
                                    [--ready-rounds 10] [--skip-ready]

The Gitea binary must be built (``make setup``, or ``python3 -m fjord.devcluster.binaries build
gitea``). Gitea runs in a temporary directory and is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
import yaml

from fjord.api import ApiSettings
from fjord.api.server import ApiServer
from fjord.control import ControlPlane, ControlSettings, Role, system_actor
from fjord.control.builds import render_commit
from fjord.control.tokens import create_token
from fjord.devcluster.cluster import LocalCluster
from fjord.devcluster.gitea import GIT_IDENTITY, LocalGitea, seed
from fjord.devcluster.registry import LocalRegistry
from fjord.kube import Kube, is_true
from fjord.sources import mirror_for
from fjord.spec import DynamicConfig, PlatformConfig, default_platform
from fjord.spec.platform import Cluster, Environment, IngressRouting, OciStore, Org

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "platform-app"
PLATFORM = default_platform().model_copy(update={"routing": IngressRouting(flavour="ingress")})
FILES = 10


def _fast_import_stream(commits: int, blob_bytes: int) -> bytes:
    """A ``git fast-import`` stream: ``commits`` commits on main, each rewriting one data file."""
    chunks: list[bytes] = []
    when = 1_767_225_600  # 2026-01-01
    for index in range(commits):
        data = os.urandom(blob_bytes)
        chunks.append(b"blob\nmark :%d\ndata %d\n%s\n" % (index + 1, len(data), data))
        message = b"change %d" % index
        chunks.append(
            b"commit refs/heads/main\ncommitter bench <bench@fjord> %d +0000\n"
            b"data %d\n%s\n" % (when + index, len(message), message)
        )
        if index == 0:
            for path in sorted(EXAMPLE.rglob("*")):
                if path.is_file():
                    content = path.read_bytes()
                    name = path.relative_to(EXAMPLE).as_posix().encode()
                    chunks.append(
                        b"M 100644 inline %s\ndata %d\n%s\n" % (name, len(content), content)
                    )
        chunks.append(b"M 100644 :%d data/file-%d.bin\n\n" % (index + 1, index % FILES))
    return b"".join(chunks)


def _make_repository(gitea: LocalGitea, work: Path, commits: int, history_mb: float) -> str:
    repository = "ttd/big"
    gitea.create_org("ttd")
    gitea.create_repo(repository)
    local = work / "big"
    local.mkdir()
    gitea.git(local, "init", "-q", "-b", "main")
    blob = int(history_mb * 1024 * 1024 / commits)
    subprocess.run(
        ["git", "-C", str(local), "fast-import", "--quiet"],
        input=_fast_import_stream(commits, blob),
        check=True,
        env={**os.environ, **GIT_IDENTITY},
    )
    gitea.git(local, "push", "-q", gitea.clone_url(repository), "main")
    return repository


def _push_one(gitea: LocalGitea, work: Path, repository: str, round_: int) -> None:
    local = work / "big"
    gitea.git(local, "checkout", "-q", "-f", "main")
    (local / "NOTES").write_text(f"round {round_}\n")
    gitea.git(local, "add", "NOTES")
    gitea.git(local, "commit", "-q", "-m", f"round {round_}")
    gitea.git(local, "push", "-q", gitea.clone_url(repository), "main")


def _release(mirror_root: Path, url: str, token: str) -> dict[str, float]:
    started = time.perf_counter()
    mirror = mirror_for(mirror_root, url, token)
    resolved = mirror.resolve("main")
    resolved_at = time.perf_counter()
    render_commit(
        mirror, resolved, org="ttd", app="skjema", platform=PLATFORM, dynamic=DynamicConfig()
    )
    done = time.perf_counter()
    return {
        "total_s": round(done - started, 3),
        "resolve_s": round(resolved_at - started, 3),
        "render_s": round(done - resolved_at, 3),
    }


async def _tag_to_ready(work: Path, gitea: LocalGitea, rounds: int) -> dict[str, Any]:
    """Push commit + tag → webhook → deployment Ready in tt02, ``rounds`` times."""
    seeded, tokens = seed(gitea, {"ttd/skjema": EXAMPLE}, tag="v0.0.1")
    repo = seeded["ttd/skjema"]
    registry = LocalRegistry.start(work / "registry")
    cluster = LocalCluster(work / "cluster", "bench")
    try:
        state = cluster.up(nodes=1, flux=True)
        platform = PlatformConfig(
            domain="fjord.localhost",
            environments=[Environment(name="tt02"), Environment(name="production")],
            orgs={
                "ttd": Org(
                    store=OciStore(kind="oci", registry=registry.host, plain_http=True),
                    clusters={"tt02": [Cluster(name="local")]},
                )
            },
            routing=IngressRouting(flavour="ingress"),
        )
        settings = ControlSettings(
            data_dir=work / "control",
            platform=platform,
            kustomization_timeout="60s",
            gitea_url=gitea.url,
            gitea_token=gitea.token,
        )
        plane = await ControlPlane.open(settings)
        try:
            made = await create_token(
                plane, system_actor("bench"), "bench", {"*": Role.platform_admin}
            )
        finally:
            await plane.close()
        with ApiServer(ApiSettings(control=settings, sweep_seconds=1.0)) as server:
            async with httpx2.AsyncClient(
                base_url=server.url,
                headers={"Authorization": f"Bearer {made.token}"},
                timeout=120,
            ) as api:

                async def call(method: str, path: str, body: Any = None) -> Any:
                    response = await api.request(method, path, json=body)
                    response.raise_for_status()
                    return response.json() if response.content else None

                async with await Kube.connect(state.kubeconfig) as kube:
                    for crd_path in sorted((REPO / "deploy" / "crds").glob("*.yaml")):
                        crd = yaml.safe_load(crd_path.read_text())
                        await kube.apply(crd, field_manager="bench", force=True)
                        await kube.wait_for(
                            "apiextensions.k8s.io/v1",
                            "CustomResourceDefinition",
                            crd["metadata"]["name"],
                            until=lambda o: is_true(o, "Established"),
                        )
                    objects = await call(
                        "POST",
                        "/api/clusters/bootstrap",
                        {"org": "ttd", "environment": "tt02", "cluster": "local"},
                    )
                    for obj in objects:
                        await kube.apply(obj, field_manager="bench", force=True)
                await call(
                    "PUT", "/api/clusters/ttd.tt02.local/receiver", {"url": state.flux_receiver_url}
                )
                await call("PUT", "/api/orgs/ttd/credential", {"token": tokens["ttd"]})
                await call(
                    "POST",
                    "/api/apps",
                    {
                        "name": "ttd/skjema",
                        "repo": repo.clone_url,
                        "deploy_branch": "main",
                        "deploy_environment": "tt02",
                    },
                )
                # Warm: the first deploy fetches into a new mirror and creates the namespace.
                first = await call(
                    "POST", "/api/apps/ttd/skjema/deployments", {"environment": "tt02"}
                )
                await _ready(call, first["id"], None)
                seconds: list[float] = []
                source = work / "next"
                for round_ in range(rounds):
                    shutil.rmtree(source, ignore_errors=True)
                    shutil.copytree(EXAMPLE, source)
                    (source / "CHANGELOG").write_text(f"round {round_}\n")
                    started = time.perf_counter()
                    commit = gitea.push_directory(
                        "ttd/skjema", source, tag=f"v1.{round_}.0", message=f"round {round_}"
                    )
                    await _ready(call, None, commit)
                    seconds.append(round(time.perf_counter() - started, 2))
        return {
            "rounds": rounds,
            "median_s": statistics.median(seconds),
            "min_s": min(seconds),
            "max_s": max(seconds),
            "all_s": seconds,
        }
    finally:
        cluster.down()
        registry.stop()


async def _ready(call: Any, deployment_id: int | None, commit: str | None) -> None:
    """Wait until the deployment (by id, or the newest of ``commit``) is ready in tt02."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if deployment_id is not None:
            found = [await call("GET", f"/api/deployments/{deployment_id}")]
        else:
            rows = await call("GET", "/api/apps/ttd/skjema/history?environment=tt02&limit=5")
            found = [r for r in rows if r["commit"] == commit]
        if found and found[0]["state"] == "ready":
            return
        if found and found[0]["state"] == "failed":
            raise RuntimeError(f"deployment failed: {found[0]['reason']}")
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no ready deployment of {commit or deployment_id} in tt02")


def _size_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--history-mb", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ready-rounds", type=int, default=10)
    parser.add_argument("--skip-ready", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fjord-bench-gitea-") as tmp:
        work = Path(tmp)
        gitea = LocalGitea.start(work / "gitea")
        try:
            made = time.perf_counter()
            repository = _make_repository(gitea, work, args.commits, args.history_mb)
            setup_s = time.perf_counter() - made
            url = gitea.clone_url(repository)
            mirrors = work / "mirrors"
            first = _release(mirrors, url, gitea.token)
            incremental: list[dict[str, float]] = []
            for round_ in range(args.rounds):
                _push_one(gitea, work, repository, round_)
                incremental.append(_release(mirrors, url, gitea.token))
            noop = [_release(mirrors, url, gitea.token) for _ in range(args.rounds)]
            result: dict[str, Any] = {
                "fetch": {
                    "commits": args.commits + args.rounds,
                    "history_mb": args.history_mb,
                    "setup_s": round(setup_s, 1),
                    "first": first,
                    "incremental": {
                        "median_total_s": statistics.median(r["total_s"] for r in incremental),
                        "median_resolve_s": statistics.median(r["resolve_s"] for r in incremental),
                        "rounds": incremental,
                    },
                    "noop": {"median_total_s": statistics.median(r["total_s"] for r in noop)},
                    "mirror_mb": _size_mb(mirrors),
                    "gitea_repositories_mb": _size_mb(work / "gitea" / "repositories"),
                }
            }
            if not args.skip_ready:
                result["tag_to_ready"] = asyncio.run(_tag_to_ready(work, gitea, args.ready_rounds))
        finally:
            gitea.stop()
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
