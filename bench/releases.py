"""Release benchmark: fjord's per-app build against the Helm + tar + ORAS pipeline, one run.

Prints one JSON document. The baseline is what teams script today, per app: ``helm template``
(one subprocess per environment) → files → ``tar czf`` → ``oras push`` to a registry; Helm and
ORAS are built from the Go modules under ``tools/helm`` and ``tools/oras`` (``python3 -m
fjord.devcluster.binaries build bench``; this script builds them when they are missing).

fjord does, per app, ``build_release`` (render + pre-publish checks + deterministic pack +
digest) in process, and separately build + ``publish`` to the same loopback registry. Both
pipelines render the same apps: fjord's built-in platform chart, and — for an apples-to-apples
Helm comparison — ``bench/chart`` (Deployment, Service, HPA, PDB, ServiceAccount, NetworkPolicy,
Ingress, plus the Maskinporten/credentials resources) rendered by ``helm template`` and by fjord
through helm-python-sdk. The per-app timings interleave the pipelines app by app, so the noise
of a shared machine hits both alike; the ratios are the numbers to read.

    .venv/bin/python bench/releases.py [--apps 1000] [--baseline-apps 50] [--profile]
    .venv/bin/python bench/releases.py --validators-only   # jsonschema-rs vs jsonschema alone
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import gc
import io
import json
import os
import platform as host_platform
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from fjord.devcluster import binaries
from fjord.devcluster.registry import LocalRegistry
from fjord.releases import Release, build_release, publish
from fjord.render.helm import platform_facts
from fjord.render.openapi import schema_for, validator_for
from fjord.spec import AppSpec, load_app_spec, spec_for_environment
from fjord.spec.overlay import deep_merge
from fjord.spec.platform import (
    Cluster,
    Environment,
    IngressRouting,
    Org,
    PlatformConfig,
)
from fjord.stores.registry import RegistryStore

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "bench" / "chart"
ORG = "ttd"
SOURCE = "https://git.example/ttd/{app}"
REVISION = "main@sha1:0123456789abcdef0123456789abcdef01234567"
FLUX_CONTENT = "application/vnd.cncf.flux.content.v1.tar+gzip"
FLUX_CONFIG = "application/vnd.cncf.flux.config.v1+json"

SCOPES = [
    "altinn:serviceowner/instances.read",
    "altinn:serviceowner/instances.write",
    "altinn:events.publish",
    "skatteetaten:testnorge/testdata.read",
    "digdir:dialogporten.serviceprovider",
]


def bench_platform() -> PlatformConfig:
    """tt02 → production, org ttd, plain Ingress routing (what the Helm chart renders too)."""
    clusters = {"tt02": [Cluster(name="tt02-1")], "production": [Cluster(name="production-1")]}
    return PlatformConfig(
        domain="fjord.localhost",
        environments=[
            Environment(name="tt02", domain="tt02.fjord.localhost"),
            Environment(name="production"),
        ],
        orgs={ORG: Org(clusters=clusters)},
        routing=IngressRouting(flavour="ingress"),
    )


# --- app generation -----------------------------------------------------------------------------


def app_name(index: int) -> str:
    return f"app-{index:04d}"


def common_fields(index: int) -> dict[str, Any]:
    """What varies between apps: image, port, scopes, databases."""
    name = app_name(index)
    doc: dict[str, Any] = {
        "org": ORG,
        "app": name,
        "image": f"ghcr.io/{ORG}/{name}:1.{index % 17}.{index % 5}",
        "port": 5000 + index % 7 * 1000,
        "maskinporten": {"scopes": SCOPES[: 1 + index % len(SCOPES)]},
    }
    if index % 3 == 0:
        doc["postgresql"] = {
            "databases": [{"name": "forms"}, {"name": f"db{index % 4}"}][: 1 + index % 2]
        }
    return doc


def workload(index: int) -> dict[str, Any]:
    return {
        "resources": {
            "requests": {"cpu": f"{100 + index % 4 * 50}m", "memory": f"{128 * (1 + index % 3)}Mi"},
            "limits": {"memory": f"{256 * (1 + index % 3)}Mi"},
        },
        "replicas": {"min": 2, "max": 4 + index % 5, "cpuTarget": 70 + index % 3 * 5},
        "probes": {
            "liveness": {"path": "/health"},
            "readiness": {"path": "/health/ready", "periodSeconds": 5},
        },
    }


def platform_app(index: int) -> dict[str, Any]:
    """A fjord.yaml for the built-in platform chart."""
    doc = common_fields(index)
    doc.update(workload(index))
    doc["env"] = {
        "ASPNETCORE_ENVIRONMENT": "Production",
        "FEATURE_FLAGS": f"set-{index % 11}",
        "PLATFORM_API_KEY": {
            "valueFrom": {"secretKeyRef": {"name": f"{app_name(index)}-platform", "key": "apiKey"}}
        },
    }
    doc["environments"] = {
        "tt02": {"replicas": {"min": 1, "max": 2}, "env": {"ASPNETCORE_ENVIRONMENT": "Staging"}}
    }
    return doc


def chart_app(index: int) -> dict[str, Any]:
    """The same app, bringing bench/chart as its own Helm chart."""
    doc = common_fields(index)
    values = workload(index)
    values["env"] = {
        "ASPNETCORE_ENVIRONMENT": "Production",
        "FEATURE_FLAGS": f"set-{index % 11}",
        "PLATFORM_API_KEY": {"secret": f"{app_name(index)}-platform", "key": "apiKey"},
    }
    doc["chart"] = {"path": "./chart", "values": values}
    doc["environments"] = {
        "tt02": {
            "chart": {
                "values": {
                    "replicas": {"min": 1, "max": 2},
                    "env": {"ASPNETCORE_ENVIRONMENT": "Staging"},
                }
            }
        }
    }
    return doc


def write_apps(root: Path, count: int, *, with_chart: bool) -> list[Path]:
    dirs = []
    for index in range(count):
        app_dir = root / app_name(index)
        app_dir.mkdir(parents=True)
        doc = chart_app(index) if with_chart else platform_app(index)
        (app_dir / "fjord.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        if with_chart:
            shutil.copytree(CHART, app_dir / "chart")
        dirs.append(app_dir)
    return dirs


# --- the baseline pipeline ----------------------------------------------------------------------


def baseline_values(spec: AppSpec, environment: str, platform: PlatformConfig) -> dict[str, Any]:
    """The values file the pipeline script passes to `helm template` for one environment."""
    effective = spec_for_environment(spec, environment)
    assert effective.chart is not None
    values = deep_merge(
        effective.chart.values, {"fjord": platform_facts(effective, environment, platform)}
    )
    values["infra"] = {
        "enabled": True,
        "scopes": list(effective.maskinporten.scopes) if effective.maskinporten else [],
        "databases": [d.name for d in effective.postgresql.databases]
        if effective.postgresql
        else [],
    }
    return values


class Baseline:
    def __init__(
        self, bin_dir: Path, registry: LocalRegistry, work: Path, platform: PlatformConfig
    ):
        self.helm = str(bin_dir / "helm")
        self.oras = str(bin_dir / "oras")
        self.registry = registry
        self.work = work
        self.platform = platform
        # Helm and ORAS keep caches/config under HOME; give them a private, writable one.
        self.env = dict(
            os.environ, HOME=str(work / "home"), HELM_CACHE_HOME=str(work / "home/helm-cache")
        )
        (work / "home").mkdir(parents=True, exist_ok=True)
        self.time_binary = ""  # GNU time, only while measuring memory (see _exec)
        self.peak_kib: dict[str, int] = {}

    def versions(self) -> dict[str, str]:
        helm = subprocess.run(
            [self.helm, "version", "--short"], capture_output=True, text=True, env=self.env
        )
        oras = subprocess.run([self.oras, "version"], capture_output=True, text=True, env=self.env)
        return {"helm": helm.stdout.strip(), "oras": oras.stdout.split()[1]}  # "Version: 1.3.3 …"

    def _exec(self, tool: str, argv: list[str], cwd: Path | None = None) -> bytes:
        """Run one pipeline step; with ``self.time_binary`` set, record the step's peak RSS.

        The peak comes from GNU time (a small parent of the tool): a child forked from this
        process reports this process's own peak as its ru_maxrss, so RUSAGE_CHILDREN here
        would only echo fjord's memory.
        """
        prefix = [self.time_binary, "-f", "maxrss_kib=%M"] if self.time_binary else []
        proc = subprocess.run(
            [*prefix, *argv], cwd=cwd, capture_output=True, env=self.env, check=False
        )
        stderr = proc.stderr
        if self.time_binary:
            head, _, last = stderr.rstrip().rpartition(b"\n")
            if last.startswith(b"maxrss_kib="):
                kib = int(last.split(b"=", 1)[1])
                self.peak_kib[tool] = max(self.peak_kib.get(tool, 0), kib)
                stderr = head
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed: {stderr.decode()}{proc.stdout.decode()}")
        return proc.stdout

    def run(self, app_dir: Path, tag: str = "v1") -> dict[str, float]:
        """One app through the pipeline; returns seconds per phase."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        spec = load_app_spec(app_dir)
        work = self.work / "apps" / f"{spec.app}-{tag}"
        out = work / "out"
        shutil.rmtree(work, ignore_errors=True)
        out.mkdir(parents=True)
        helm_seconds = 0.0
        for environment in self.platform.environment_names:
            values_file = work / f"values-{environment}.yaml"
            values_file.write_text(json.dumps(baseline_values(spec, environment, self.platform)))
            t = time.perf_counter()
            manifests = self._exec(
                "helm template",
                [
                    self.helm,
                    "template",
                    spec.app,
                    str(app_dir / "chart"),
                    "--namespace",
                    spec.namespace,
                    "-f",
                    str(values_file),
                ],
            )
            helm_seconds += time.perf_counter() - t
            (out / environment).mkdir()
            (out / environment / f"{spec.app}.yaml").write_bytes(manifests)
        timings["helm_template"] = helm_seconds
        t = time.perf_counter()
        self._exec("tar czf", ["tar", "czf", str(work / "app.tgz"), "-C", str(out), "."])
        timings["tar"] = time.perf_counter() - t
        (work / "config.json").write_text("{}")
        t = time.perf_counter()
        created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._exec(
            "oras push",
            [
                self.oras,
                "push",
                "--plain-http",
                f"{self.registry.host}/bench/{spec.app}:{tag}",
                f"app.tgz:{FLUX_CONTENT}",
                "--config",
                f"config.json:{FLUX_CONFIG}",
                "--annotation",
                f"org.opencontainers.image.source={SOURCE.format(app=spec.app)}",
                "--annotation",
                f"org.opencontainers.image.revision={REVISION}",
                "--annotation",
                f"org.opencontainers.image.created={created}",
                "--no-tty",
            ],
            cwd=work,
        )
        timings["oras_push"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - started
        return timings

    def peak_memory(self, app_dir: Path) -> dict[str, float] | None:
        """Peak RSS (MiB) of each tool over one more, untimed, run of ``app_dir``."""
        self.time_binary = shutil.which("time") or ""
        if not self.time_binary:
            return None
        try:
            self.run(app_dir, tag="memory")
        finally:
            self.time_binary = ""
        return {tool: round(kib / 1024, 1) for tool, kib in sorted(self.peak_kib.items())}

    def kinds(self, app_name_: str, tag: str = "v1") -> dict[str, list[str]]:
        out = self.work / "apps" / f"{app_name_}-{tag}" / "out"
        return {
            env.name: sorted(
                d["kind"] for d in yaml.safe_load_all((env / f"{app_name_}.yaml").read_text()) if d
            )
            for env in sorted(out.iterdir())
        }


# --- helpers ------------------------------------------------------------------------------------


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 2),
        "min_ms": round(ordered[0] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "n": len(ordered),
    }


def maxrss_mib(who: int) -> float:
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)  # KiB on Linux


def timed_build(app_dir: Path, platform: PlatformConfig) -> tuple[float, Release]:
    t = time.perf_counter()
    release = build(app_dir, platform)
    return time.perf_counter() - t, release


def kinds_of(release: Release) -> dict[str, list[str]]:
    found = {}
    for path, data in release.files().items():
        env = path.split("/")[0]
        found[env] = sorted(d["kind"] for d in yaml.safe_load_all(data) if d)
    return found


def build(app_dir: Path, platform: PlatformConfig) -> Release:
    return build_release(
        app_dir, source=SOURCE.format(app=app_dir.name), revision=REVISION, platform=platform
    )


def rebuild_all(dirs: list[Path], platform: PlatformConfig) -> tuple[float, float, list[str]]:
    """Wall and CPU seconds (this process) to build every app, and the digests."""
    t, cpu = time.perf_counter(), time.process_time()
    digests = [build(d, platform).digest for d in dirs]
    return time.perf_counter() - t, time.process_time() - cpu, digests


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# Where a build's time goes: cumulative time of fjord's stages (they nest only as listed).
PHASES = {
    ("loader.py", "load_app_spec"): "load + validate fjord.yaml",
    ("overlay.py", "spec_for_environment"): "environment overlays",
    ("platform_chart.py", "platform_objects"): "platform chart objects",
    ("infra.py", "infra_objects"): "infra objects",
    ("yamlout.py", "dump"): "YAML serialisation",
    ("checks.py", "check_objects"): "pre-publish checks (schemas)",
    ("oci.py", "build_artifact"): "pack + digest",
    ("helm.py", "_stage"): "Helm: copy the chart to a private staging directory (once per app)",
    ("helm.py", "render"): "Helm: ChartRenderer.render in all (staging + helm-python-sdk + parse)",
    ("helm.py", "_parse"): "Helm: parse the rendered YAML",
}


def profile_rebuild(dirs: list[Path], platform: PlatformConfig, top: int = 12) -> dict[str, Any]:
    profiler = cProfile.Profile()
    profiler.enable()
    for d in dirs:
        build(d, platform)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in raw.values())
    phases = dict.fromkeys(PHASES.values(), 0.0)
    for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in raw.items():
        label = PHASES.get((Path(file).name, func))
        if label is not None:
            phases[label] += ct
    hottest = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:top]
    return {
        "apps": len(dirs),
        "profiled_s": round(total, 2),
        "phase_share": {label: round(ct / total, 3) for label, ct in phases.items()},
        "top_self_time": [
            {
                "function": f"{Path(file).parent.name}/{Path(file).name}:{line}:{func}",
                "self_share": round(tt / total, 3),
                "cumulative_share": round(ct / total, 3),
            }
            for (file, line, func), (_cc, _nc, tt, ct, _callers) in hottest
        ],
    }


def bench_validators(release: Release, platform: PlatformConfig, rounds: int) -> dict[str, Any]:
    """Per-object "is it valid?" time of the checks' validator (jsonschema-rs) and jsonschema.

    Both validate the same rendered objects against the same resolved schemas, interleaved
    round by round; the ratio is the number to read. (The hand-written yes/no validator the
    checks used before, ``render/fastschema.py``, took ~40 µs per Deployment here.)
    """
    objects = [
        obj
        for data in release.files().values()
        for obj in yaml.safe_load_all(data)
        if obj and obj["kind"] in {"Deployment", "Service", "HorizontalPodAutoscaler"}
    ]
    version = platform.kubernetes_version
    pairs = []
    for obj in objects:
        schema = schema_for(version, obj["apiVersion"], obj["kind"])
        fast = validator_for(version, obj["apiVersion"], obj["kind"])
        assert schema is not None
        assert fast is not None
        pairs.append((obj, fast, jsonschema.Draft7Validator(schema)))
    # Each validator checks one kind's object `BLOCK` times in a row (as the checks validate
    # many objects in a row), blocks alternating between the validators round by round.
    block = 50
    per_kind: dict[str, dict[str, list[float]]] = {}
    for _ in range(rounds):
        for obj, fast, slow in pairs:
            times = per_kind.setdefault(obj["kind"], {"jsonschema_rs": [], "jsonschema": []})
            for name, validator in (("jsonschema_rs", fast), ("jsonschema", slow)):
                t = time.perf_counter()
                for _ in range(block):
                    validator.is_valid(obj)
                times[name].append((time.perf_counter() - t) / block)
                assert validator.is_valid(obj), (name, obj["kind"])
    out: dict[str, Any] = {
        "what": "is_valid per object, microseconds (median / min over blocks of "
        f"{block}), same objects and resolved schemas",
        "rounds": rounds,
    }
    for kind, times in sorted(per_kind.items()):
        med = {name: statistics.median(v) * 1e6 for name, v in times.items()}
        out[kind] = {
            **{
                name: {"median_us": round(m, 1), "min_us": round(min(times[name]) * 1e6, 1)}
                for name, m in med.items()
            },
            "jsonschema_over_jsonschema_rs": round(med["jsonschema"] / med["jsonschema_rs"], 1),
        }
    return out


# --- main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=1000, help="apps in the fjord rebuild")
    parser.add_argument(
        "--baseline-apps", type=int, default=50, help="apps timed through both pipelines"
    )
    parser.add_argument("--profile", action="store_true", help="add a cProfile of the rebuild")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--validators-only", action="store_true", help="only the schema validator comparison"
    )
    args = parser.parse_args()
    if args.validators_only:
        with tempfile.TemporaryDirectory(prefix="fjord-bench-validators-") as tmp:
            (app_dir,) = write_apps(Path(tmp), 1, with_chart=False)
            release = build(app_dir, bench_platform())
            print(json.dumps(bench_validators(release, bench_platform(), 40), indent=2))
        return 0

    bin_dir = binaries.build_group("bench")
    platform = bench_platform()
    work = Path(tempfile.mkdtemp(prefix="fjord-bench-releases-"))
    result: dict[str, Any] = {
        "benchmark": "releases",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": host_platform.platform(),
            "note": "2 shared cores; other work ran at the same time, so absolute times are noisy",
            "load_average_at_start": [round(x, 1) for x in os.getloadavg()],
        },
        "apps": args.apps,
        "baseline_apps": args.baseline_apps,
        "environments": platform.environment_names,
    }
    registry = LocalRegistry.start(work / "registry")
    try:
        platform_dirs = write_apps(work / "platform-apps", args.apps, with_chart=False)
        chart_dirs = write_apps(work / "chart-apps", args.baseline_apps + 1, with_chart=True)
        baseline = Baseline(bin_dir, registry, work / "baseline", platform)
        result["tools"] = baseline.versions()

        # 1. fjord: every app rebuilt (twice), in process (first, so its peak RSS is fjord's alone).
        gc.collect()
        rss_before = maxrss_mib(resource.RUSAGE_SELF)
        build(platform_dirs[0], platform)  # imports, schema loading
        first_s, first_cpu, first = rebuild_all(platform_dirs, platform)
        second_s, second_cpu, second = rebuild_all(platform_dirs, platform)
        result["fjord_rebuild"] = {
            "what": "render + checks + pack + digest of each app from its fjord.yaml, in process",
            "apps": args.apps,
            "first_s": round(first_s, 2),
            "second_unchanged_s": round(second_s, 2),
            "first_cpu_s": round(first_cpu, 2),
            "second_unchanged_cpu_s": round(second_cpu, 2),
            "note": "wall time depends on the other work on the 2 shared cores; CPU time less so",
            "per_app_ms": round(first_s / args.apps * 1000, 2),
            "apps_per_s": round(args.apps / first_s, 1),
            "same_digests_both_times": first == second,
            "distinct_digests": len(set(first)),
            "target_s": 30,
            "meets_target": max(first_s, second_s) < 30,
            "meets_target_by_cpu_time": max(first_cpu, second_cpu) < 30,
            "peak_rss_mib": maxrss_mib(resource.RUSAGE_SELF),
            "rss_before_mib": rss_before,
        }

        result["schema_validation"] = bench_validators(
            build(platform_dirs[0], platform), platform, 40
        )

        # 2. Per app, interleaved: baseline, fjord (platform chart), fjord (Helm chart), publish.
        loop = asyncio.new_event_loop()
        store = RegistryStore(registry.url)
        baseline.run(chart_dirs[-1], tag="warmup")  # page cache for the binaries
        build(chart_dirs[-1], platform)  # load helm-python-sdk's library
        samples: dict[str, list[float]] = {
            k: []
            for k in (
                "baseline",
                "helm_template",
                "tar",
                "oras_push",
                "fjord_platform",
                "fjord_chart",
                "fjord_platform_publish",
                "fjord_publish_only",
                "baseline_cpu",
                "fjord_platform_cpu",
                "fjord_chart_cpu",
            )
        }
        equivalent = True
        kinds_example: dict[str, Any] = {}
        for index in range(args.baseline_apps):
            cpu, child_cpu = time.process_time(), children_cpu()
            phases = baseline.run(chart_dirs[index])
            samples["baseline"].append(phases["total"])
            samples["baseline_cpu"].append(time.process_time() - cpu + children_cpu() - child_cpu)
            for key in ("helm_template", "tar", "oras_push"):
                samples[key].append(phases[key])
            platform_dir, chart_dir = platform_dirs[index], chart_dirs[index]
            cpu = time.process_time()
            s, platform_release = timed_build(platform_dir, platform)
            samples["fjord_platform_cpu"].append(time.process_time() - cpu)
            samples["fjord_platform"].append(s)
            cpu = time.process_time()
            s, chart_release = timed_build(chart_dir, platform)
            samples["fjord_chart_cpu"].append(time.process_time() - cpu)
            samples["fjord_chart"].append(s)
            t = time.perf_counter()
            release = build(platform_dirs[index], platform)
            t_pub = time.perf_counter()
            loop.run_until_complete(publish(store, release, tags=["v1"]))
            now = time.perf_counter()
            samples["fjord_platform_publish"].append(now - t)
            samples["fjord_publish_only"].append(now - t_pub)
            helm_kinds = baseline.kinds(app_name(index))
            if helm_kinds != kinds_of(chart_release) or helm_kinds != kinds_of(platform_release):
                equivalent = False
                kinds_example = {
                    "helm": helm_kinds,
                    "fjord_chart": kinds_of(chart_release),
                    "fjord_platform": kinds_of(platform_release),
                }
            elif not kinds_example:
                kinds_example = {"objects_per_environment": helm_kinds}
        loop.run_until_complete(store.aclose())
        loop.close()

        med = {k: statistics.median(v) for k, v in samples.items()}
        result["per_app"] = {
            "what": (
                f"median over the same {args.baseline_apps} apps, pipelines interleaved app by "
                "app; the baseline is slow, so fewer apps are timed through it than are rebuilt"
            ),
            "baseline_helm_tar_oras": {
                "total": summary(samples["baseline"]),
                "helm_template_both_envs": summary(samples["helm_template"]),
                "tar_czf": summary(samples["tar"]),
                "oras_push": summary(samples["oras_push"]),
            },
            "fjord_build_platform_chart": summary(samples["fjord_platform"]),
            "fjord_build_helm_chart": summary(samples["fjord_chart"]),
            "fjord_build_and_publish_platform_chart": summary(samples["fjord_platform_publish"]),
            "fjord_publish_only": summary(samples["fjord_publish_only"]),
            "cpu": {
                "what": (
                    "CPU seconds per app: the baseline's children (helm, tar, oras: user + sys) "
                    "plus this process's share; fjord's in-process build"
                ),
                "baseline": summary(samples["baseline_cpu"]),
                "fjord_build_platform_chart": summary(samples["fjord_platform_cpu"]),
                "fjord_build_helm_chart": summary(samples["fjord_chart_cpu"]),
            },
            "same_object_kinds_in_all_pipelines": equivalent,
            "objects": kinds_example,
        }
        mins = {k: min(v) for k, v in samples.items()}

        def ratio(baseline_keys: tuple[str, ...], fjord_key: str) -> dict[str, Any]:
            by_median = sum(med[k] for k in baseline_keys) / med[fjord_key]
            by_min = sum(mins[k] for k in baseline_keys) / mins[fjord_key]
            return {
                "by_median": round(by_median, 1),
                "by_min": round(by_min, 1),
                "meets_target": by_median >= 20,
            }

        result["ratios"] = {
            "target": 20,
            "what": (
                "baseline per-app time / fjord per-app time; by_min compares the fastest runs, "
                "which the shared machine's noise disturbs least"
            ),
            "build_platform_chart": ratio(("baseline",), "fjord_platform"),
            "build_platform_chart_cpu": ratio(("baseline_cpu",), "fjord_platform_cpu"),
            "build_helm_chart_cpu": ratio(("baseline_cpu",), "fjord_chart_cpu"),
            "build_helm_chart": ratio(("baseline",), "fjord_chart"),
            "build_and_publish_platform_chart": ratio(("baseline",), "fjord_platform_publish"),
            "build_platform_chart_vs_baseline_without_push": ratio(
                ("helm_template", "tar"), "fjord_platform"
            ),
            "build_helm_chart_vs_baseline_without_push": ratio(
                ("helm_template", "tar"), "fjord_chart"
            ),
        }
        result["memory"] = {
            "fjord_rss_before_rebuild_mib": result["fjord_rebuild"]["rss_before_mib"],
            "fjord_peak_rss_after_rebuild_mib": result["fjord_rebuild"]["peak_rss_mib"],
            "process_peak_rss_at_end_mib": maxrss_mib(resource.RUSAGE_SELF),
            "note_process": (
                "ru_maxrss of this process: before = interpreter + imports; the end figure also "
                "covers helm-python-sdk's Go library (chart apps) and the baseline's bookkeeping"
            ),
            "baseline_tools_peak_rss_mib": baseline.peak_memory(chart_dirs[0]),
            "note_tools": (
                "peak RSS of each tool (largest of its runs for one app), measured by GNU time "
                "as their parent in an extra untimed run"
            ),
            "rusage_children_maxrss_mib": maxrss_mib(resource.RUSAGE_CHILDREN),
            "note_rusage_children": (
                "RUSAGE_CHILDREN is not the tools' memory: a child forked from this process "
                "inherits its peak, so this only echoes the parent's RSS at the time of forking"
            ),
        }
        missed = not result["fjord_rebuild"]["meets_target"] or not all(
            r["meets_target"] for r in (result["ratios"]["build_platform_chart"],)
        )
        if args.profile or missed:
            result["profile_rebuild_platform_chart"] = profile_rebuild(
                platform_dirs[: min(200, args.apps)], platform
            )
        if args.profile or not result["ratios"]["build_helm_chart"]["meets_target"]:
            result["profile_build_helm_chart"] = profile_rebuild(
                chart_dirs[: min(20, args.baseline_apps)], platform
            )
    finally:
        registry.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            result["work_dir"] = str(work)
    result["machine"]["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
