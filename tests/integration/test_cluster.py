"""The local cluster is a real Kubernetes: these tests exercise semantics a fake would get wrong."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fjord.devcluster.cluster import ClusterState
from fjord.kube import Kube, KubeError, is_true

pytestmark = pytest.mark.cluster

GROUP = "test.fjord.dev"


def widget_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "size": {"type": "integer", "minimum": 1},
                                        "color": {"type": "string"},
                                    },
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


async def ensure_widget_crd(kube: Kube) -> None:
    await kube.apply(widget_crd(), field_manager="test")
    await kube.wait_for(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        f"widgets.{GROUP}",
        until=lambda crd: is_true(crd, "Established") and is_true(crd, "NamesAccepted"),
        what="Established",
    )


def widget(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def configmap(name: str, namespace: str, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"k": "v"},
    }
    obj["metadata"].update(extra)
    return obj


async def test_crd_is_established_and_served(kube: Kube, namespace: str) -> None:
    await ensure_widget_crd(kube)
    created = await kube.apply(widget("w1", namespace, size=3), field_manager="test")
    assert created["spec"] == {"size": 3}
    # The CRD's schema is enforced by the real apiserver.
    with pytest.raises(KubeError) as rejected:
        await kube.apply(widget("w2", namespace, size=0), field_manager="test")
    assert rejected.value.status == 422
    assert "spec.size" in str(rejected.value)


async def test_custom_objects_can_be_watched(kube: Kube, namespace: str) -> None:
    await ensure_widget_crd(kube)
    created = await kube.apply(widget("watched", namespace, size=1), field_manager="test")
    since = int(created["metadata"]["resourceVersion"])
    seen: list[tuple[str, dict[str, Any]]] = []

    async def watch() -> None:
        events = kube.watch(f"{GROUP}/v1", "Widget", namespace, resource_version=since, timeout=20)
        async for kind, obj in events:
            seen.append((kind, obj))
            if kind == "DELETED":
                return

    watcher = asyncio.create_task(watch())
    # Watching from the creation's resourceVersion: nothing done after it can be missed.
    await kube.apply(widget("watched", namespace, size=2), field_manager="test")
    await kube.delete(f"{GROUP}/v1", "Widget", "watched", namespace)
    await asyncio.wait_for(watcher, 30)
    assert [kind for kind, _ in seen] == ["MODIFIED", "DELETED"]
    assert seen[0][1]["spec"] == {"size": 2}


async def test_server_side_apply_detects_field_manager_conflicts(
    kube: Kube, namespace: str
) -> None:
    await kube.apply(configmap("shared", namespace), field_manager="alice")
    contested = configmap("shared", namespace)
    contested["data"] = {"k": "bob's value"}
    with pytest.raises(KubeError) as conflict:
        await kube.apply(contested, field_manager="bob")
    assert conflict.value.status == 409
    assert "alice" in str(conflict.value)

    taken = await kube.apply(contested, field_manager="bob", force=True)
    assert taken["data"] == {"k": "bob's value"}
    managers = {entry["manager"] for entry in taken["metadata"]["managedFields"]}
    assert "bob" in managers


async def test_finalizer_blocks_deletion_until_removed(kube: Kube, namespace: str) -> None:
    await kube.apply(
        configmap("guarded", namespace, finalizers=["test.fjord.dev/hold"]), field_manager="test"
    )
    await kube.delete("v1", "ConfigMap", "guarded", namespace)
    held = await kube.get("v1", "ConfigMap", "guarded", namespace)
    assert held is not None
    assert held["metadata"]["deletionTimestamp"]

    await kube.patch("v1", "ConfigMap", "guarded", {"metadata": {"finalizers": None}}, namespace)
    await kube.wait_for(
        "v1", "ConfigMap", "guarded", namespace, until=lambda obj: obj is None, what="deleted"
    )


async def test_owner_references_are_garbage_collected(kube: Kube, namespace: str) -> None:
    owner = await kube.apply(configmap("owner", namespace), field_manager="test")
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    await kube.apply(configmap("child", namespace, ownerReferences=[ref]), field_manager="test")
    await kube.delete("v1", "ConfigMap", "owner", namespace, propagation="Background")
    # The controller-manager's garbage collector removes the dependent.
    await kube.wait_for(
        "v1", "ConfigMap", "child", namespace, until=lambda obj: obj is None, what="collected"
    )


async def test_deployment_becomes_available_on_a_kwok_node(
    kube: Kube, namespace: str, cluster: ClusterState
) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }
    await kube.apply(deployment, field_manager="test")
    available = await kube.wait_for(
        "apps/v1",
        "Deployment",
        "web",
        namespace,
        until=lambda d: is_true(d, "Available") and (d or {})["status"].get("readyReplicas") == 2,
        what="Available with 2 ready replicas",
    )
    assert available is not None
    pods = await kube.items("v1", "Pod", namespace, label_selector="app=web")
    assert len(pods) == 2
    assert {p["spec"]["nodeName"] for p in pods} <= set(cluster.nodes)
    assert all(p["status"]["phase"] == "Running" for p in pods)


async def test_namespace_deletion_completes(kube: Kube) -> None:
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})
    await kube.apply(configmap("inside", "doomed"), field_manager="test")
    await kube.delete("v1", "Namespace", "doomed")
    await kube.wait_for(
        "v1", "Namespace", "doomed", until=lambda ns: ns is None, timeout=90, what="gone"
    )
