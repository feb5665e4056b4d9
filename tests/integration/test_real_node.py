"""A real node: Pods run for real (containerd, runc, the CNI bridge, kubelet, kube-proxy), are
reachable from the host at their Pod IP, and ``down`` leaves the machine as it found it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fjord.devcluster import appimages, images, node
from fjord.devcluster.cluster import ClusterState, LocalCluster
from fjord.devcluster.kubeclient import KubeREST
from fjord.kube import Kube
from machine_support import Machine, snapshot

pytestmark = pytest.mark.cluster


def probe_image() -> tuple[str, Any]:
    """Python's own HTTP server over a page, on the sample apps' Debian base."""
    page = images.layer([images.Entry("srv/index.html", b"hello from a real pod\n")])
    image = images.build_image(
        [appimages.base_layer(), page],
        images.ImageConfig(entrypoint=("/usr/bin/python3", "-m", "http.server", "8080")),
    )
    return f"fjord.local/probe:{image.digest[7:19]}", image


def pod(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "web",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "args": ["--directory", "/srv", "--bind", "0.0.0.0"],  # noqa: S104 (in its Pod)
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def ingress(name: str, host: str) -> dict[str, Any]:
    backend = {"service": {"name": name, "port": {"number": 80}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "rules": [
                {
                    "host": host,
                    "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
                }
            ]
        },
    }


async def _through_traefik(url: str, host: str, status: int = 200) -> httpx2.Response:
    """Traefik's answer once it has picked up the route (it watches the cluster)."""
    async with httpx2.AsyncClient(timeout=10) as http:
        for _ in range(120):
            response = await http.get(f"{url}/", headers={"Host": host})
            if response.status_code == status:
                return response
            await asyncio.sleep(0.5)
    raise AssertionError(f"Traefik never answered {status} for {host}: {response.status_code}")


@pytest.fixture
def real_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalCluster, Machine]]:
    root = tmp_path_factory.mktemp("rn")
    directory = root / f"r{uuid.uuid4().hex[:6]}"
    before = snapshot(str(directory))
    local = LocalCluster(directory, directory.name)
    try:
        yield local, before
    finally:
        local.down()


async def _wait_ready(kube: Kube, name: str) -> dict[str, Any]:
    for _ in range(600):
        found = await kube.get("v1", "Pod", name, "default")
        conditions = {
            c["type"]: c["status"] for c in (found or {}).get("status", {}).get("conditions", [])
        }
        if found and conditions.get("Ready") == "True":
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"pod {name} never became Ready: {found}")


async def test_a_pod_runs_on_the_real_node_and_down_restores_the_machine(
    real_cluster: tuple[LocalCluster, Machine], cluster_binaries: Path
) -> None:
    local, before = real_cluster
    state: ClusterState = local.up(nodes=1, real_node=True)
    assert state.real_node is not None
    name, image = probe_image()
    node.import_image(state.node_layout, name, image)
    async with await Kube.connect(state.kubeconfig) as kube:
        nodes = {n["metadata"]["name"]: n for n in await kube.items("v1", "Node")}
        assert set(nodes) == {f"{local.name}-node-0", state.real_node["name"]}
        real = nodes[state.real_node["name"]]
        addresses = {a["type"]: a["address"] for a in real["status"]["addresses"]}
        assert addresses["InternalIP"] == state.real_node["address"]
        assert real["status"]["nodeInfo"]["kubeletVersion"] == "v1.36.3"

        await kube.apply(pod("web", name), field_manager="test")
        running = await _wait_ready(kube, "web")
        assert running["spec"]["nodeName"] == state.real_node["name"]  # never on the fake node
        pod_ip = running["status"]["podIP"]
        assert pod_ip.startswith(state.real_node["address"].rsplit(".", 1)[0] + ".")
        async with httpx2.AsyncClient(timeout=10) as http:
            response = await http.get(f"http://{pod_ip}:8080/")
        assert response.status_code == 200
        assert response.text == "hello from a real pod\n"
        # Traefik on the host serves the cluster's Ingresses, straight to the Pod IP.
        await kube.apply(service("web"), field_manager="test")
        await kube.apply(ingress("web", "probe.apps.fjord.localhost"), field_manager="test")
        assert state.ingress_url is not None
        routed = await _through_traefik(state.ingress_url, "probe.apps.fjord.localhost")
        assert routed.text == "hello from a real pod\n"
        other = await _through_traefik(state.ingress_url, "other.apps.fjord.localhost", 404)
        assert other.status_code == 404
    # The apiserver reaches the kubelet at its InternalIP: logs work.
    with KubeREST(state.server, state.pki) as rest:
        assert "GET / HTTP" in rest.get_text("/api/v1/namespaces/default/pods/web/log")

    during = snapshot(str(local.directory))
    assert during.links - before.links  # the bridge exists while the node runs
    assert during.node_processes
    assert any(str(local.directory) in m for m in during.mounts - before.mounts)

    assert local.down() is True
    after = snapshot(str(local.directory))
    assert after.node_processes == frozenset()
    assert sorted(after.links ^ before.links) == []
    assert sorted(m for m in after.mounts ^ before.mounts if str(local.directory) in m) == []
    assert after.iptables == before.iptables
    assert after.sysctls == before.sysctls
