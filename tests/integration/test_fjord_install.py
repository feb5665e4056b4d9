"""fjord installed with its own chart on a real node: the image built here (no engine, no
registry download) starts as the control plane (two replicas on PostgreSQL) and as each
operator, with the chart's values, and each answers ``/readyz``; every object the chart renders
is accepted by the apiserver; each ServiceAccount may do what its operator needs and nothing
more (SubjectAccessReviews), and an operator in its Pod does its work with that; building again
gives the same digest, pushed with a bundle signed by the release key.

One real-node cluster and one PostgreSQL serve the whole module.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from fjord.artifact.signing import generate_key_pair, load_public_key
from fjord.devcluster import fjordchart, fjordimage, hostledger, node
from fjord.devcluster.cluster import ClusterState, LocalCluster
from fjord.devcluster.postgres import LocalPostgres
from fjord.devcluster.registry import LocalRegistry
from fjord.kube import Kube, is_true
from fjord.maskinporten.keys import generate_jwk
from fjord.maskinporten.secret_format import MaskinportenSettings
from fjord.stores.locations import open_location
from fjord.stores.signatures import verify_bundles

# One real-node cluster for the module; the first image build after a lock change installs the
# libraries (minutes), so the module gets more than the default per-test timeout.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1500)]

NAMESPACE = "fjord-system"
WATCHED = "ttd-skjema"
ELSEWHERE = "default"  # a namespace the operators do not watch
OPERATORS = ("credentials", "janitor", "maskinporten", "workloads")
ADMIN_SECRET = "credentials-admin"


@dataclass(frozen=True)
class Installed:
    state: ClusterState
    image: str
    digest: str
    values: dict[str, Any]


def _values(image: str) -> dict[str, Any]:
    repository, _, tag = image.rpartition(":")
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "controlPlane": {"replicas": 2, "resources": {"requests": {"cpu": "10m"}}},
        "operators": {
            "namespaces": [WATCHED],
            "maskinporten": {
                "enabled": True,
                "options": {
                    "api-url": "http://digdir.invalid",
                    "client-orgno": "123456789",
                    "platform-id": "test",
                },
            },
            "resources": {"requests": {"cpu": "10m"}},
        },
    }


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def _secrets(database_url: str, admin_url: str) -> list[dict[str, Any]]:
    supplier = MaskinportenSettings.for_issuer(
        issuer="http://digdir.invalid", client_id="supplier", jwk=generate_jwk("s"), scopes=["x"]
    )
    return [
        _secret("fjord-database", {"url": database_url}),
        _secret(
            "fjord-keys",
            {
                "cosign.key": generate_key_pair().private_pem.decode(),
                "secret.key": Fernet.generate_key().decode(),
            },
        ),
        _secret("fjord-maskinporten-supplier", supplier.to_secret_data()),
        # The credentials operator's admin settings: the same PostgreSQL, as its superuser.
        _secret(ADMIN_SECRET, {"postgresql-url": admin_url}),
    ]


async def _install(kube: Kube, values: dict[str, Any], admin_url: str) -> None:
    for name in (NAMESPACE, WATCHED):
        await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    database_url = admin_url.replace("postgresql://", "postgresql+psycopg://")
    for secret in _secrets(database_url, admin_url):
        await kube.apply(secret, field_manager="test")
    for obj in fjordchart.objects(values, namespace=NAMESPACE):
        await kube.apply(obj, field_manager="helm", force=True)
        if obj["kind"] == "CustomResourceDefinition":
            await kube.wait_for(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                obj["metadata"]["name"],
                until=lambda found: is_true(found, "Established"),
                timeout=60,
            )


@pytest.fixture(scope="module")
def postgres_for_pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    server = LocalPostgres.start(tmp_path_factory.mktemp("pg"), also_listen=hostledger.HOST_ADDRESS)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState]:
    directory = tmp_path_factory.mktemp("fi") / f"f{uuid.uuid4().hex[:6]}"
    local = LocalCluster(directory, directory.name)
    try:
        yield local.up(nodes=1, real_node=True)
    finally:
        local.down()


@pytest.fixture(scope="module")
async def installed(
    real_cluster: ClusterState, postgres_for_pods: LocalPostgres, cluster_binaries: Path
) -> Installed:
    image = fjordimage.fjord_image()
    name = f"fjord.local/fjord:{image.digest[7:19]}"
    node.import_image(real_cluster.node_layout, name, image)
    values = _values(name)
    url = postgres_for_pods.dsn_at(hostledger.HOST_ADDRESS)
    async with await Kube.connect(real_cluster.kubeconfig) as kube:
        await _install(kube, values, url)
    return Installed(real_cluster, name, image.digest, values)


async def _ready_pods(kube: Kube, component: str, count: int) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/component={component}"
    for _ in range(900):
        pods = await kube.items("v1", "Pod", NAMESPACE, label_selector=selector)
        ready = [
            p
            for p in pods
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions", [])
            )
        ]
        if len(ready) == count:
            return ready
        await asyncio.sleep(0.5)
    raise AssertionError(f"{component}: {count} Ready Pods expected, got {pods}")


async def _answer(url: str) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.get(url)


async def test_the_image_runs_the_control_plane_and_every_operator(installed: Installed) -> None:
    async with await Kube.connect(installed.state.kubeconfig) as kube:
        control = await _ready_pods(kube, "control-plane", 2)
        for pod in control:
            assert pod["spec"]["nodeName"] == installed.state.real_node["name"]
            container = pod["spec"]["containers"][0]
            assert container["image"] == installed.image
            ip = pod["status"]["podIP"]
            answer = await _answer(f"http://{ip}:8650/readyz")
            assert (answer.status_code, answer.json()) == (200, {"status": "ok"})
        for operator in OPERATORS:
            (pod,) = await _ready_pods(kube, f"operator-{operator}", 1)
            ip = pod["status"]["podIP"]
            answer = await _answer(f"http://{ip}:8080/readyz")
            assert (answer.status_code, answer.json()) == (200, {"status": "ok"}), operator
            metrics = await _answer(f"http://{ip}:9090/metrics")
            assert "fjord_operator" in metrics.text


async def test_every_object_the_chart_renders_is_accepted_by_the_apiserver(
    installed: Installed,
) -> None:
    async with await Kube.connect(installed.state.kubeconfig) as kube:
        for obj in fjordchart.objects(installed.values, namespace=NAMESPACE):
            meta = obj["metadata"]
            found = await kube.get(
                obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace")
            )
            assert found is not None, f"{obj['kind']} {meta['name']} was not stored"
        # The other shape: every namespace watched (ClusterRoleBindings), Ingress, OIDC, Gitea,
        # the legacy key and a platform file; admitted by the apiserver without being stored.
        for obj in fjordchart.objects(_production_values(installed.image), namespace=NAMESPACE):
            await kube.apply(obj, field_manager="helm-dry-run", force=True, dry_run=True)


def _production_values(image: str) -> dict[str, Any]:
    values = _values(image)
    values["operators"]["namespaces"] = []
    values["controlPlane"] |= {
        "publicUrl": "https://fjord.example.com",
        "platformConfig": "orgs: []\n",
        "legacySignatures": {"enabled": True},
        "oidc": {"enabled": True, "issuer": "https://login.example.com", "clientId": "fjord"},
        "gitea": {"url": "https://git.example.com", "token": {"existingSecret": "gitea"}},
        "ingress": {"enabled": True, "className": "traefik", "tls": {"secretName": "fjord-tls"}},
    }
    values["operators"]["workloads"] = {"eventsUrl": "http://notification-controller.flux-system/"}
    return values


# (API group, resource[/subresource], verb, namespace): what each ServiceAccount needs.
Check = tuple[str, str, str, str]
MAY: dict[str, list[Check]] = {
    "operator-credentials": [
        ("fjord.dev", "appcredentials", "watch", WATCHED),
        ("fjord.dev", "appcredentials", "delete", WATCHED),
        ("fjord.dev", "appcredentials/status", "patch", WATCHED),
        ("", "secrets", "watch", WATCHED),
        ("", "secrets", "create", WATCHED),
        ("", "secrets", "patch", WATCHED),
        ("", "secrets", "delete", WATCHED),
        ("events.k8s.io", "events", "create", WATCHED),
    ],
    "operator-janitor": [
        ("", "secrets", "list", WATCHED),
        ("", "secrets", "delete", WATCHED),
        ("", "pods", "list", WATCHED),
        ("apps", "replicasets", "list", WATCHED),
        ("batch", "cronjobs", "list", WATCHED),
        ("events.k8s.io", "events", "create", WATCHED),
    ],
    "operator-maskinporten": [
        ("fjord.dev", "maskinportenclients", "watch", WATCHED),
        ("fjord.dev", "maskinportenclients", "patch", WATCHED),
        ("fjord.dev", "maskinportenclients/status", "patch", WATCHED),
        ("", "secrets", "create", WATCHED),
        ("", "secrets", "delete", WATCHED),
        ("", "events", "create", WATCHED),
    ],
    "operator-workloads": [
        ("", "pods", "watch", WATCHED),
        ("", "events", "watch", WATCHED),
        ("kustomize.toolkit.fluxcd.io", "kustomizations", "get", WATCHED),
    ],
    "control-plane": [],
}
# What none of them may do: other namespaces, fjord's own Secrets, RBAC, workloads' specs.
NOBODY: list[Check] = [
    ("", "secrets", "get", ELSEWHERE),
    ("", "secrets", "list", ELSEWHERE),
    ("", "pods", "list", ELSEWHERE),
    ("", "secrets", "list", NAMESPACE),
    ("", "configmaps", "get", WATCHED),
    ("", "namespaces", "delete", ""),
    ("apps", "deployments", "patch", WATCHED),
    ("rbac.authorization.k8s.io", "rolebindings", "create", WATCHED),
    ("rbac.authorization.k8s.io", "clusterroles", "create", ""),
    ("fjord.dev", "appcredentials", "create", WATCHED),
    ("fjord.dev", "maskinportenclients", "delete", WATCHED),
]
MAY_NOT: dict[str, list[Check]] = {
    "operator-credentials": [
        ("fjord.dev", "maskinportenclients", "get", WATCHED),
        ("", "pods", "list", WATCHED),
    ],
    "operator-janitor": [
        ("", "secrets", "create", WATCHED),
        ("", "secrets", "patch", WATCHED),
        ("", "pods", "delete", WATCHED),
        ("fjord.dev", "appcredentials", "get", WATCHED),
    ],
    "operator-maskinporten": [
        ("fjord.dev", "appcredentials", "get", WATCHED),
        ("", "pods", "list", WATCHED),
    ],
    "operator-workloads": [
        ("", "secrets", "get", WATCHED),
        ("", "pods", "delete", WATCHED),
        ("kustomize.toolkit.fluxcd.io", "kustomizations", "patch", WATCHED),
    ],
    "control-plane": [
        ("", "secrets", "get", WATCHED),
        ("", "pods", "list", NAMESPACE),
        ("", "events", "create", WATCHED),
    ],
}


async def _allowed(kube: Kube, account: str, check: Check, name: str = "") -> bool:
    group, resource, verb, namespace = check
    main, _, sub = resource.partition("/")
    review = await kube.create(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": f"system:serviceaccount:{NAMESPACE}:{account}",
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}"],
                "resourceAttributes": {
                    "group": group,
                    "resource": main,
                    "subresource": sub,
                    "verb": verb,
                    "namespace": namespace,
                    "name": name,
                },
            },
        }
    )
    return bool(review["status"].get("allowed"))


async def test_each_service_account_may_do_what_it_needs_and_nothing_more(
    installed: Installed,
) -> None:
    async with await Kube.connect(installed.state.kubeconfig) as kube:
        for component, needs in MAY.items():
            account = f"fjord-{component}"
            for check in needs:
                assert await _allowed(kube, account, check), (account, "may", check)
            for check in NOBODY + MAY_NOT[component]:
                assert not await _allowed(kube, account, check), (account, "may not", check)
        # The admin settings of the credentials operator: that one Secret, read only.
        credentials = "fjord-operator-credentials"
        admin = ("", "secrets", "get", NAMESPACE)
        assert await _allowed(kube, credentials, admin, ADMIN_SECRET)
        assert not await _allowed(kube, credentials, admin, "fjord-keys")
        assert not await _allowed(
            kube, credentials, ("", "secrets", "patch", NAMESPACE), ADMIN_SECRET
        )


async def test_an_operator_in_its_pod_does_its_work_with_the_charts_rbac(
    installed: Installed,
) -> None:
    """In-cluster API access with the ServiceAccount token, the admin Secret read by name, a
    Secret written in the watched namespace, status patched: AppCredentials for a database."""
    async with await Kube.connect(installed.state.kubeconfig) as kube:
        await kube.apply(
            {
                "apiVersion": "fjord.dev/v1alpha1",
                "kind": "AppCredentials",
                "metadata": {"name": "skjema", "namespace": WATCHED},
                "spec": {
                    "postgresql": {"databases": [{"name": "skjema", "secretName": "skjema-pg"}]}
                },
            },
            field_manager="test",
        )
        await kube.wait_for(
            "fjord.dev/v1alpha1",
            "AppCredentials",
            "skjema",
            WATCHED,
            until=lambda found: is_true(found, "Ready"),
            timeout=180,
        )
        secret = await kube.get("v1", "Secret", "skjema-pg", WATCHED)
        assert secret is not None
        data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert data["host"] == hostledger.HOST_ADDRESS


async def test_the_image_is_the_same_for_the_same_inputs_and_pushed_signed_with_the_release_key(
    installed: Installed, registry: LocalRegistry, tmp_path: Path
) -> None:
    # The command builds the image again: the fjord layer again from the wheel, every layer
    # packed again (the base rootfs and the installed libraries come from their caches).
    release = generate_key_pair()
    key = tmp_path / "release.key"
    key.write_bytes(release.private_pem)
    location = open_location(f"oci://{registry.host}/platform")
    # The command runs its own event loop: in a thread, beside the test's.
    built = await asyncio.to_thread(
        CliRunner().invoke,
        fjordimage.cli,
        ["build", "--push", f"oci://{registry.host}/platform", "--key", str(key)],
        catch_exceptions=False,
    )
    assert built.exit_code == 0, built.output
    report = json.loads(built.stdout)
    assert (report["digest"], report["repository"]) == (installed.digest, "platform/fjord")
    async with location.store as store:
        verified = await verify_bundles(
            store,
            location.repository("fjord"),
            installed.digest,
            [load_public_key(release.public_pem)],
        )
    assert verified.key_index == 0
