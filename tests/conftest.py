"""Session-wide fixtures: real local clusters (with and without Flux) and a Kubernetes session.

Clusters are started once per test session and only when a test asks for one; a missing binary
fails the test with the command that builds it, it never skips.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fjord.devcluster import binaries
from fjord.devcluster.cluster import ClusterState, LocalCluster
from fjord.kube import Kube


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
