"""Build and locate the upstream binaries the local cluster runs.

The binaries (kube-apiserver and friends, etcd, kwok, the Flux controllers) are built from the Go
modules under ``tools/`` into a versioned cache directory outside the work tree. The directory
name carries a hash of every ``go.mod``/``go.sum`` plus the Go minor version, so a version bump
builds into a fresh directory and an unchanged tree finds its binaries without running Go at all.

This module deliberately uses only the standard library: ``make`` runs it with the system
``python3`` before fjord's virtualenv exists (``python3 -m fjord.devcluster.binaries build``
with ``src`` on the path).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.10"
KWOK_VERSION = "v0.8.0"
FLUX_VERSION = "v2.9.4"  # the Flux distribution whose controller line the tools/flux module pins
REQUIRED_GO_MINOR = (1, 26)

# A cold build needs the module cache (~2 GB), the build cache (~3-5 GB) and ~0.6 GB of binaries.
COLD_BUILD_FREE_BYTES = 8 * 1024**3

# The pipeline the release benchmark (bench/releases.py) compares fjord with. Built only by
# `build bench`, into a directory of its own so these pins never change the cluster binaries' key.
HELM_VERSION = "v4.3.1"
ORAS_VERSION = "v1.3.3"
BENCH_COLD_BUILD_FREE_BYTES = 3 * 1024**3

TOOLS_DIR = Path(__file__).resolve().parents[3] / "tools"


class BuildError(RuntimeError):
    """A build prerequisite is missing or a build step failed; the message says how to fix it."""


@dataclass(frozen=True)
class Target:
    """One Go module under tools/ and the binaries it produces."""

    module_dir: str
    packages: tuple[str, ...]
    binaries: tuple[str, ...]
    ldflags: str = "-s -w"


def _k8s_ldflags() -> str:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={KUBERNETES_VERSION}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(flags)


TARGETS: tuple[Target, ...] = (
    Target(
        "k8s",
        tuple(
            f"k8s.io/kubernetes/cmd/{name}"
            for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
        ),
        ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"),
        _k8s_ldflags(),
    ),
    Target("etcd", ("go.etcd.io/etcd/server/v3",), ("etcd",)),
    Target("kwok", ("sigs.k8s.io/kwok/cmd/kwok",), ("kwok",)),  # version is a constant
    Target(
        "flux",
        (
            "github.com/fluxcd/source-controller",
            "github.com/fluxcd/kustomize-controller",
            "github.com/fluxcd/notification-controller",
        ),
        ("source-controller", "kustomize-controller", "notification-controller"),
    ),
)

BENCH_TARGETS: tuple[Target, ...] = (
    Target(
        "helm",
        ("helm.sh/helm/v4/cmd/helm",),
        ("helm",),
        f"-s -w -X helm.sh/helm/v4/internal/version.version={HELM_VERSION}"
        " -X helm.sh/helm/v4/internal/version.gitTreeState=clean",
    ),
    # ORAS keeps its version in the source; an empty BuildMetadata is what its release build sets.
    Target(
        "oras",
        ("oras.land/oras/cmd/oras",),
        ("oras",),
        "-s -w -X oras.land/oras/internal/version.GitTreeState=clean",
    ),
)

# Renames: `go build -o dir/` names a binary after the last element of its package path.
_OUTPUT_NAMES = {"server": "etcd"}  # go.etcd.io/etcd/server/v3 builds as "server"

KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)
FLUX_CRD_MODULES = (
    "github.com/fluxcd/source-controller",
    "github.com/fluxcd/kustomize-controller",
    "github.com/fluxcd/notification-controller",
)


def cache_root() -> Path:
    base = os.environ.get("FJORD_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fjord"
    )
    return Path(base)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-mod=readonly")
    return env


def _tools_fingerprint(
    tools_dir: Path, targets: Sequence[Target] = TARGETS, recipe: str | None = None
) -> str:
    digest = hashlib.sha256()
    for target in targets:
        for name in ("go.mod", "go.sum"):
            path = tools_dir / target.module_dir / name
            digest.update(f"{target.module_dir}/{name}\0".encode())
            digest.update(path.read_bytes() if path.exists() else b"")
    digest.update((_build_recipe_fingerprint() if recipe is None else recipe).encode())
    return digest.hexdigest()[:12]


def _build_recipe_fingerprint() -> str:
    # Flags and copied assets change the produced files, so they belong in the cache key too.
    recipe = [(t.module_dir, t.packages, t.ldflags) for t in TARGETS]
    return json.dumps([recipe, KWOK_STAGES, FLUX_CRD_MODULES])


def bin_dir(tools_dir: Path = TOOLS_DIR, go_minor: tuple[int, int] = REQUIRED_GO_MINOR) -> Path:
    """The versioned directory this tree's binaries live in (whether or not built yet)."""
    override = os.environ.get("FJORD_BIN_DIR")
    if override:
        return Path(override)
    name = (
        f"k8s-{KUBERNETES_VERSION}_etcd-{ETCD_VERSION}_kwok-{KWOK_VERSION}_flux-{FLUX_VERSION}"
        f"_go{go_minor[0]}.{go_minor[1]}-{_tools_fingerprint(tools_dir)}"
    )
    return cache_root() / "bin" / name


def is_complete(directory: Path) -> bool:
    manifest = directory / "manifest.json"
    if not manifest.exists():
        return False
    try:
        recorded = json.loads(manifest.read_text())
    except ValueError:
        return False
    return all((directory / name).is_file() for name in recorded.get("binaries", []))


def locate() -> Path:
    """Return the directory of built binaries, or explain how to build them."""
    directory = bin_dir()
    if not is_complete(directory):
        raise BuildError(
            f"the local cluster binaries are not built yet (expected in {directory}).\n"
            "Run `make tools` (or `python3 src/fjord/devcluster/binaries.py build`) first; "
            "the first build takes 15-30 minutes on 2 cores."
        )
    return directory


def _say(message: str) -> None:
    print(f"[fjord tools] {message}", file=sys.stderr, flush=True)


def _go_version() -> tuple[int, int]:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "no Go toolchain on PATH. Install Go >= 1.26 (https://go.dev/doc/install) and make "
            "sure `go version` works; fjord builds kube-apiserver, etcd, kwok and Flux from "
            "Go modules."
        )
    out = subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, env=_go_env(), check=False
    )
    match = re.match(r"go(\d+)\.(\d+)", out.stdout.strip())
    if out.returncode != 0 or match is None:
        raise BuildError(f"`go env GOVERSION` failed: {out.stderr.strip() or out.stdout.strip()}")
    version = (int(match.group(1)), int(match.group(2)))
    if version < REQUIRED_GO_MINOR:
        raise BuildError(
            f"Go {version[0]}.{version[1]} is too old: Kubernetes {KUBERNETES_VERSION} needs Go "
            f"{REQUIRED_GO_MINOR[0]}.{REQUIRED_GO_MINOR[1]} or newer (GOTOOLCHAIN=local is set on "
            "purpose, so Go will not download a toolchain). Install a newer Go."
        )
    return version


PROXY_HINT = (
    "The Go module proxy could not serve a module. Check network access to it "
    "(`go env GOPROXY`; GOPROXY=off disables it) or set GOPROXY to a reachable mirror."
)


def _run_go(args: Sequence[str], cwd: Path, what: str, *, hint: str = "") -> str:
    proc = subprocess.run(
        ["go", *args], cwd=cwd, env=_go_env(), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BuildError(f"{what} failed in {cwd}:\n{tail}" + (f"\n{hint}" if hint else ""))
    return proc.stdout


def _module_dir(module_dir: Path, module: str) -> Path:
    out = _run_go(["list", "-m", "-json", module], module_dir, f"locating {module}")
    return Path(json.loads(out)["Dir"])


def _build_target(target: Target, tools_dir: Path, out_dir: Path) -> None:
    module_dir = tools_dir / target.module_dir
    _say(f"{target.module_dir}: downloading modules")
    _run_go(
        ["mod", "download"],
        module_dir,
        f"downloading modules for {target.module_dir}",
        hint=PROXY_HINT,  # the only thing this step needs from outside is the proxy
    )
    deps = _run_go(["list", "-deps", *target.packages], module_dir, "listing packages")
    total = len(deps.split())
    started = time.monotonic()
    cmd = [
        "go",
        "build",
        "-v",
        "-trimpath",
        "-tags",
        "selinux,notest,grpcnotrace",
        "-ldflags",
        target.ldflags,
        "-o",
        str(out_dir) + "/",
        *target.packages,
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=module_dir,
        env=_go_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    compiled = 0
    lines: list[str] = []
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(30):
            elapsed = int(time.monotonic() - started)
            _say(
                f"{target.module_dir}: compiled {compiled}/{total} packages "
                f"({elapsed // 60}m{elapsed % 60:02d}s)"
            )

    ticker = threading.Thread(target=heartbeat, daemon=True)
    ticker.start()
    for line in proc.stdout:
        compiled += 1
        lines.append(line.rstrip())
    code = proc.wait()
    stop.set()
    if code != 0:
        raise BuildError(
            f"go build for {target.module_dir} failed (exit {code}):\n" + "\n".join(lines[-20:])
        )
    for source, final in _OUTPUT_NAMES.items():
        if (out_dir / source).exists():
            (out_dir / source).rename(out_dir / final)
    elapsed = time.monotonic() - started
    _say(f"{target.module_dir}: built {', '.join(target.binaries)} in {elapsed:.0f}s")


def _copy_assets(tools_dir: Path, out_dir: Path) -> None:
    kwok_root = _module_dir(tools_dir / "kwok", "sigs.k8s.io/kwok") / "kustomize" / "stage"
    stages = [(kwok_root / rel).read_text() for rel in KWOK_STAGES]
    (out_dir / "kwok-stages.yaml").write_text("\n---\n".join(s.strip() for s in stages) + "\n")
    crd_dir = out_dir / "flux-crds"
    crd_dir.mkdir(exist_ok=True)
    for module in FLUX_CRD_MODULES:
        for crd in sorted((_module_dir(tools_dir / "flux", module) / "config/crd/bases").glob("*")):
            shutil.copyfile(crd, crd_dir / crd.name)


@contextlib.contextmanager
def _build_lock(name: str = "build.lock") -> Iterator[None]:
    # Two setups at once (a test run and a demo) must not build into the same directory.
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / name, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say("another build is running; waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def build(tools_dir: Path = TOOLS_DIR) -> Path:
    """Build every binary into the versioned cache directory; a no-op when it is complete."""
    target_dir = bin_dir(tools_dir)
    if is_complete(target_dir):
        # Fast path: the directory name encodes the versions, so no Go is needed at all.
        _say(f"binaries up to date in {target_dir}")
        return target_dir
    with _build_lock():
        return _build_locked(tools_dir)


def _build_locked(tools_dir: Path) -> Path:
    started = time.monotonic()
    go_minor = _go_version()
    target_dir = bin_dir(tools_dir, go_minor)
    if is_complete(target_dir):
        _say(f"binaries up to date in {target_dir}")
        return target_dir
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target_dir.parent).free
    if free < COLD_BUILD_FREE_BYTES:
        raise BuildError(
            f"only {free / 1024**3:.1f} GiB free under {target_dir.parent}; a cold build of the "
            f"cluster binaries needs about {COLD_BUILD_FREE_BYTES // 1024**3} GiB (module and "
            "build caches). Free disk space or point FJORD_CACHE_DIR/GOCACHE/GOMODCACHE elsewhere."
        )
    _say(
        f"building Kubernetes {KUBERNETES_VERSION}, etcd {ETCD_VERSION}, kwok {KWOK_VERSION} and "
        f"Flux {FLUX_VERSION} controllers into {target_dir}"
    )
    _say("a cold build takes 15-30 minutes on 2 cores; later runs reuse this directory")
    staging = _fresh_staging(target_dir)
    binaries = _build_targets(TARGETS, tools_dir, staging)
    _copy_assets(tools_dir, staging)
    manifest: dict[str, object] = {
        "kubernetes": KUBERNETES_VERSION,
        "etcd": ETCD_VERSION,
        "kwok": KWOK_VERSION,
        "flux": FLUX_VERSION,
        "go": f"{go_minor[0]}.{go_minor[1]}",
        "binaries": binaries,
        "build_seconds": round(time.monotonic() - started, 1),
    }
    _publish(staging, target_dir, manifest)
    _say(f"done in {time.monotonic() - started:.0f}s")
    return target_dir


def _fresh_staging(target_dir: Path) -> Path:
    staging = target_dir.with_name(target_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _build_targets(targets: Sequence[Target], tools_dir: Path, staging: Path) -> list[str]:
    binaries: list[str] = []
    for target in targets:
        _build_target(target, tools_dir, staging)
        binaries.extend(target.binaries)
    return binaries


def _publish(staging: Path, target_dir: Path, manifest: dict[str, object]) -> None:
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    # Publish atomically: a half-built directory never looks complete.
    shutil.rmtree(target_dir, ignore_errors=True)
    staging.rename(target_dir)


# --- Extra groups: binaries beside the cluster's, each in a versioned directory of its own -----
#
# Each group hashes only its own inputs, so adding or bumping one never rebuilds another (the
# cluster binaries above take ~15 minutes cold). A group builds either `Target`s (a module under
# tools/ with `tool` directives) or `SourceBuild`s: upstream modules that must be built *as the
# main module* from a copy of their source, because their own go.mod carries replace lines (or,
# for Gitea 1.27, declares another module path) that a consumer module cannot honour.


@dataclass(frozen=True)
class SourceBuild:
    """An upstream module built as the main module from a writable copy of its source."""

    module: str
    version: str
    package: str  # relative to the module root, e.g. "." or "./cmd/traefik"
    binary: str
    ldflags: str = "-s -w"
    tags: str = ""
    keep: tuple[str, ...] = ()  # source folders the binary reads at run time, copied beside it


@dataclass(frozen=True)
class Group:
    """A set of binaries published together into ``<cache>/bin/<label>_go<minor>-<hash>/``."""

    name: str
    label: str  # versions, readable in the directory name
    targets: tuple[Target, ...] = ()
    sources: tuple[SourceBuild, ...] = ()
    free_bytes: int = 3 * 1024**3
    in_setup: bool = True  # built by `make setup` (and so by `make test` and `make demo`)
    hint: str = ""  # how long a cold build takes, said before it starts


GITEA_VERSION = "v1.27.3"

GROUPS: dict[str, Group] = {
    group.name: group
    for group in (
        Group(
            "bench",
            f"helm-{HELM_VERSION}_oras-{ORAS_VERSION}",
            targets=BENCH_TARGETS,
            free_bytes=BENCH_COLD_BUILD_FREE_BYTES,
            in_setup=False,
            hint="a few minutes on 2 cores",
        ),
        Group(
            "gitea",
            f"gitea-{GITEA_VERSION}",
            sources=(
                SourceBuild(
                    "code.gitea.io/gitea",
                    GITEA_VERSION,
                    ".",
                    "gitea",
                    f'-s -w -X "main.Version={GITEA_VERSION.lstrip("v")}" -X "main.Tags="',
                    keep=("templates", "options"),
                ),
            ),
            free_bytes=4 * 1024**3,
            hint="about 5 minutes cold on 2 cores",
        ),
    )
}


def group_dir(
    name: str, tools_dir: Path = TOOLS_DIR, go_minor: tuple[int, int] = REQUIRED_GO_MINOR
) -> Path:
    """The versioned directory of one extra group (whether or not built yet)."""
    group = _group(name)
    override = os.environ.get(f"FJORD_{name.upper()}_BIN_DIR")
    if override:
        return Path(override)
    recipe = json.dumps(
        [
            [(t.module_dir, t.packages, t.ldflags) for t in group.targets],
            [(s.module, s.version, s.package, s.ldflags, s.tags, s.keep) for s in group.sources],
        ]
    )
    fingerprint = _tools_fingerprint(tools_dir, group.targets, recipe)
    return cache_root() / "bin" / f"{group.label}_go{go_minor[0]}.{go_minor[1]}-{fingerprint}"


def _group(name: str) -> Group:
    try:
        return GROUPS[name]
    except KeyError:
        raise BuildError(f"unknown binary group {name!r}; known: {', '.join(GROUPS)}") from None


def locate_group(name: str) -> Path:
    """Return an extra group's directory, or explain how to build it."""
    directory = group_dir(name)
    if not is_complete(directory):
        raise BuildError(
            f"the {name} binaries are not built yet (expected in {directory}).\n"
            f"Run `make setup` or `PYTHONPATH=src python3 -m fjord.devcluster.binaries build "
            f"{name}` first ({_group(name).hint or 'a few minutes'})."
        )
    return directory


def build_group(name: str, tools_dir: Path = TOOLS_DIR) -> Path:
    """Build one extra group into its versioned directory; a no-op when it is complete."""
    group = _group(name)
    if is_complete(group_dir(name, tools_dir)):
        _say(f"{name} binaries up to date in {group_dir(name, tools_dir)}")
        return group_dir(name, tools_dir)
    with _build_lock(f"{name}-build.lock"):
        started = time.monotonic()
        go_minor = _go_version()
        target_dir = group_dir(name, tools_dir, go_minor)
        if is_complete(target_dir):
            return target_dir
        target_dir.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(target_dir.parent).free
        if free < group.free_bytes:
            raise BuildError(
                f"only {free / 1024**3:.1f} GiB free under {target_dir.parent}; building {name} "
                f"needs about {group.free_bytes // 1024**3} GiB (module and build caches). Free "
                "disk space or point FJORD_CACHE_DIR/GOCACHE/GOMODCACHE elsewhere."
            )
        _say(f"building {group.label} into {target_dir} ({group.hint or 'a few minutes'})")
        staging = _fresh_staging(target_dir)
        binaries = _build_targets(group.targets, tools_dir, staging)
        for source in group.sources:
            _build_source(source, staging)
            binaries.append(source.binary)
        manifest: dict[str, object] = {
            "group": name,
            "label": group.label,
            "go": f"{go_minor[0]}.{go_minor[1]}",
            "binaries": binaries,
            "build_seconds": round(time.monotonic() - started, 1),
        }
        _publish(staging, target_dir, manifest)
        _say(f"{name}: done in {time.monotonic() - started:.0f}s")
        return target_dir


def _build_source(source: SourceBuild, out_dir: Path) -> None:
    started = time.monotonic()
    _say(f"{source.module}@{source.version}: downloading the module")
    scratch = out_dir.parent / (out_dir.name + ".src")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        env = {**_go_env(), "GOFLAGS": ""}  # outside any module: -mod=readonly does not apply
        proc = subprocess.run(
            ["go", "mod", "download", "-json", f"{source.module}@{source.version}"],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise BuildError(
                f"downloading {source.module}@{source.version} failed:\n"
                f"{(proc.stdout + proc.stderr).strip()[-2000:]}\n{PROXY_HINT}"
            )
        module_root = scratch / "module"
        shutil.copytree(json.loads(proc.stdout)["Dir"], module_root)
        for path in [module_root, *module_root.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o644 if path.is_file() else 0o755)  # the module cache is read-only
        _say(f"{source.module}: downloading its dependencies")
        _run_go(
            ["mod", "download"],
            module_root,
            f"downloading {source.module}'s modules",
            hint=PROXY_HINT,
        )
        cmd = ["go", "build", "-trimpath", "-ldflags", source.ldflags]
        if source.tags:
            cmd += ["-tags", source.tags]
        cmd += ["-o", str(out_dir / source.binary), source.package]
        _say(f"{source.module}: compiling (no progress lines; go build prints none without -v)")
        build = subprocess.run(
            cmd, cwd=module_root, env=_go_env(), capture_output=True, text=True, check=False
        )
        if build.returncode != 0:
            tail = "\n".join((build.stderr or build.stdout).strip().splitlines()[-20:])
            raise BuildError(f"go build of {source.module}@{source.version} failed:\n{tail}")
        for folder in source.keep:
            shutil.copytree(module_root / folder, out_dir / f"{source.binary}-data" / folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _say(f"{source.module}: built {source.binary} in {time.monotonic() - started:.0f}s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build or locate fjord's Go-built binaries.")
    parser.add_argument("command", choices=("build", "dir", "setup"))
    parser.add_argument(
        "groups",
        nargs="*",
        help="extra groups (" + ", ".join(GROUPS) + "); none means the cluster binaries",
    )
    args = parser.parse_args(argv)
    try:
        if (
            args.command == "setup"
        ):  # what `make setup` builds: the cluster and every in_setup group
            print(build())
            for name, group in GROUPS.items():
                if group.in_setup:
                    print(build_group(name))
        elif args.command == "build":
            for name in args.groups or [""]:
                print(build_group(name) if name else build())
        else:
            for name in args.groups or [""]:
                print(group_dir(name) if name else bin_dir())
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
