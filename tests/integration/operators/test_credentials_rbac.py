"""deploy/operator RBAC, applied for real, checked with SubjectAccessReviews."""

from __future__ import annotations

import pytest
import yaml
from credentials_support import ROOT, install_crds

from fjord.kube import Kube

SA = "system:serviceaccount:fjord-system:fjord-operator"

ALLOWED = [
    ("fjord.dev", "appcredentials", "watch", None),
    ("fjord.dev", "appcredentials", "delete", None),
    ("fjord.dev", "appcredentials/status", "patch", None),
    ("", "secrets", "create", None),
    ("", "secrets", "delete", None),
    ("", "pods", "list", None),
    ("apps", "replicasets", "list", None),
    ("batch", "cronjobs", "list", None),
    ("events.k8s.io", "events", "create", None),
]
DENIED = [
    ("", "namespaces", "delete", None),
    ("", "pods", "delete", None),
    ("", "configmaps", "get", None),
    ("apps", "deployments", "patch", None),
    ("fjord.dev", "appcredentials", "patch", None),  # spec is the renderer's, not ours
    ("rbac.authorization.k8s.io", "clusterroles", "create", None),
    ("fjord.dev", "maskinportenclients", "get", None),
]


async def _allowed(kube: Kube, group: str, resource: str, verb: str) -> bool:
    main, _, sub = resource.partition("/")
    review = await kube.create(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": SA,
                "groups": ["system:serviceaccounts", "system:serviceaccounts:fjord-system"],
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


@pytest.fixture
async def rbac(kube: Kube) -> None:
    await install_crds(kube)
    for name in ("namespace.yaml", "rbac.yaml"):
        for doc in yaml.safe_load_all((ROOT / "deploy" / "operator" / name).read_text()):
            await kube.apply(doc, force=True)


@pytest.mark.usefixtures("rbac")
async def test_operator_can_do_what_it_needs(kube: Kube) -> None:
    for group, resource, verb, _ in ALLOWED:
        assert await _allowed(kube, group, resource, verb), (group, resource, verb)


@pytest.mark.usefixtures("rbac")
async def test_operator_can_do_nothing_more(kube: Kube) -> None:
    for group, resource, verb, _ in DENIED:
        assert not await _allowed(kube, group, resource, verb), (group, resource, verb)
