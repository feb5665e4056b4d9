"""Session-wide fixtures: real local clusters (with and without Flux) and a Kubernetes session.

Clusters are started once per test session and only when a test asks for one; a missing binary
fails the test with the command that builds it, it never skips.

Every process the tests start inherits a session mark in its environment; when the session ends,
any marked process still running fails the run (and is killed), so a leak is found where it
happens, not as a port clash in some later run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import gitea_support
from fjord.devcluster import binaries
from fjord.devcluster.cluster import ClusterState, LocalCluster
from fjord.kube import Kube
from gitea_support import SessionGitea

SESSION_MARK = "FJORD_TEST_SESSION"
# Set at import, before any test starts a process, so every child (and theirs) inherits it.
os.environ[SESSION_MARK] = uuid.uuid4().hex
LEAK_GRACE_SECONDS = 15.0


def _marked_processes() -> dict[int, str]:
    """pid → command line of every live process that carries this session's mark (not pytest)."""
    mark = f"{SESSION_MARK}={os.environ[SESSION_MARK]}".encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            # A zombie's environ reads empty: it is gone, only unreaped.
            if mark not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found[int(entry.name)] = cmdline.strip()
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a process started by a test outlived every fixture's teardown."""
    deadline = time.monotonic() + LEAK_GRACE_SECONDS
    leaked = _marked_processes()
    while leaked and time.monotonic() < deadline:
        time.sleep(0.5)
        leaked = _marked_processes()
    if not leaked:
        return
    for pid in leaked:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"  pid {pid}: {cmdline[:300]}" for pid, cmdline in sorted(leaked.items())]
    header = f"{len(leaked)} process(es) started by the tests outlived the session (killed now):"
    message = "\n".join([header, *lines])
    if reporter is not None:
        reporter.write("\n")
        reporter.write_sep("=", "leaked processes", red=True)
        reporter.write_line(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def gitea() -> SessionGitea:
    """A real Gitea (started on first use): orgs ttd and digdir, a read token each."""
    return gitea_support.shared()


@pytest.fixture(scope="session", autouse=True)
def _stop_shared_gitea() -> Iterator[None]:
    """Stops the session's Gitea if anything started it (starts nothing)."""
    yield
    gitea_support.stop_shared()


@pytest.fixture(scope="session")
def cluster_binaries() -> Path:
    return binaries.locate()


def _start(root: Path, name: str, *, flux: bool) -> Iterator[ClusterState]:
    local = LocalCluster(root / name, name)
    try:
        yield local.up(nodes=1, flux=flux)
    finally:
        local.down()


@pytest.fixture(scope="session")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, cluster_binaries: Path
) -> Iterator[ClusterState]:
    """A local cluster without Flux: etcd, apiserver, controller-manager, scheduler, kwok."""
    yield from _start(tmp_path_factory.mktemp("clusters"), "plain", flux=False)


@pytest.fixture(scope="session")
def flux_cluster(
    tmp_path_factory: pytest.TempPathFactory, cluster_binaries: Path
) -> Iterator[ClusterState]:
    """A local cluster with Flux's source-, kustomize- and notification-controller."""
    yield from _start(tmp_path_factory.mktemp("clusters"), "flux", flux=True)


@pytest.fixture
async def kube(cluster: ClusterState) -> AsyncIterator[Kube]:
    async with await Kube.connect(cluster.kubeconfig) as session:
        yield session


@pytest.fixture
async def flux_kube(flux_cluster: ClusterState) -> AsyncIterator[Kube]:
    async with await Kube.connect(flux_cluster.kubeconfig) as session:
        yield session


async def _namespace(session: Kube) -> AsyncIterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    await session.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    await session.delete("v1", "Namespace", name)


@pytest.fixture
async def namespace(kube: Kube) -> AsyncIterator[str]:
    """A fresh namespace in ``cluster``, deleted after the test."""
    async for name in _namespace(kube):
        yield name


@pytest.fixture
async def flux_namespace(flux_kube: Kube) -> AsyncIterator[str]:
    """A fresh namespace in ``flux_cluster``, deleted after the test."""
    async for name in _namespace(flux_kube):
        yield name
