"""deploy/operator/rbac-maskinporten.yaml, applied for real, checked with SubjectAccessReviews."""

from __future__ import annotations

import pytest
import yaml
from credentials_support import ROOT, install_crds

from fjord.kube import Kube

# The role is bound to a ServiceAccount of this test's own, so the checks see this ClusterRole
# alone (in a real install both operators' roles are bound to fjord-operator).
TEST_SA = "fjord-maskinporten-rbac-test"
SA = f"system:serviceaccount:fjord-system:{TEST_SA}"
GROUPS = ["system:serviceaccounts", "system:serviceaccounts:fjord-system"]

ALLOWED = [
    ("fjord.dev", "maskinportenclients", "watch"),
    ("fjord.dev", "maskinportenclients", "patch"),
    ("fjord.dev", "maskinportenclients/status", "patch"),
    ("", "secrets", "create"),
    ("", "secrets", "patch"),
    ("", "secrets", "delete"),
    ("", "events", "create"),
]
DENIED = [
    ("fjord.dev", "maskinportenclients", "delete"),
    ("fjord.dev", "maskinportenclients", "create"),
    ("", "namespaces", "delete"),
    ("", "configmaps", "get"),
    ("apps", "deployments", "get"),
    ("rbac.authorization.k8s.io", "roles", "create"),
]


async def allowed(kube: Kube, group: str, resource: str, verb: str) -> bool:
    main, _, sub = resource.partition("/")
    review = await kube.create(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": SA,
                "groups": GROUPS,
                "resourceAttributes": {
                    "group": group,
                    "resource": main,
                    "subresource": sub,
                    "verb": verb,
                    "namespace": "some-app",
                },
            },
        }
    )
    return bool(review["status"].get("allowed"))


def documents(name: str) -> list[dict[str, object]]:
    return list(yaml.safe_load_all((ROOT / "deploy" / "operator" / name).read_text()))


@pytest.fixture
async def rbac(kube: Kube) -> None:
    await install_crds(kube)
    for doc in documents("namespace.yaml"):
        await kube.apply(doc, force=True)
    for doc in documents("rbac-maskinporten.yaml"):
        if doc["kind"] == "ClusterRoleBinding":
            doc = {**doc, "metadata": {"name": TEST_SA}}
            doc["subjects"] = [
                {"kind": "ServiceAccount", "name": TEST_SA, "namespace": "fjord-system"}
            ]
        await kube.apply(doc, force=True)


@pytest.mark.usefixtures("rbac")
async def test_maskinporten_operator_rbac_is_least_privilege(kube: Kube) -> None:
    for group, resource, verb in ALLOWED:
        assert await allowed(kube, group, resource, verb), (group, resource, verb)
    for group, resource, verb in DENIED:
        assert not await allowed(kube, group, resource, verb), (group, resource, verb)
