"""The local platform behind ``fjord dev up``: fjord's whole system on one machine, on loopback.

Two orgs with their own clusters (org ``ttd``: one tt02 cluster and two identical production
clusters; org ``digdir``: one tt02 cluster), each cluster a real local Kubernetes with Flux and
fjord's operators; one OCI registry per org (each with its own credentials, so a cluster can only
pull its own org's artifacts and images); Azurite, where org ``digdir`` keeps its releases (its
own container, read by its clusters' Flux Bucket sources with a SAS for that container only,
while ``ttd``'s releases stay in its registry); PostgreSQL and Redis for the apps' credentials;
the Maskinporten emulator; and the control plane with its web UI. Then the sample apps are
deployed the way a service owner would, and the status matrix is printed.

Every part records itself in ``platform.json`` under one root directory, so ``down`` and
``status`` work from any later process, and ``down`` after a crash still stops everything.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import yaml

from fjord.api.client import ClientError, FjordClient
from fjord.control import states
from fjord.control.views import AppStatusView
from fjord.devcluster import hostledger, processes, sampleapps, traefik
from fjord.devcluster.azurite import ACCOUNT_KEY as AZURITE_ACCOUNT_KEY
from fjord.devcluster.azurite import Azurite
from fjord.devcluster.cluster import ClusterState, LocalCluster
from fjord.devcluster.gitea import LocalGitea, SeededRepo, seed
from fjord.devcluster.kubeclient import KubeAPIError, KubeREST
from fjord.devcluster.postgres import LocalPostgres
from fjord.devcluster.processes import ProcessRecord
from fjord.devcluster.redis import LocalRedis
from fjord.devcluster.registry import LocalRegistry
from fjord.devcluster.statefile import read_state, write_state
from fjord.errors import FjordError
from fjord.kube import Kube, is_true
from fjord.maskinporten.emulator import ADMIN_SCOPES
from fjord.maskinporten.keys import generate_jwk, public_jwks
from fjord.maskinporten.secret_format import MaskinportenSettings

Progress = Callable[[str], None]

REPO_ROOT = Path(__file__).resolve().parents[3]
CRD_DIR = REPO_ROOT / "deploy" / "crds"
EXAMPLES = REPO_ROOT / "examples"
STATE_FILE = "platform.json"
SYSTEM_NAMESPACE = "fjord-system"
DEMO_USER = "demo"  # the demo's service owner in Gitea
CREDENTIALS_ADMIN_SECRET = "fjord-credentials-admin"  # noqa: S105  (a Secret name)
SUPPLIER_SECRET = "fjord-maskinporten-supplier"  # noqa: S105  (a Secret name)
SUPPLIER_CLIENT_ID = "fjord-supplier"
APP_ORGNO = "310000001"
ENVIRONMENTS = ("tt02", "production")


@dataclass(frozen=True)
class Topology:
    """Which clusters each org has in each environment."""

    orgs: Mapping[str, Mapping[str, tuple[str, ...]]]
    apps: tuple[tuple[str, str], ...] = ()  # (org/app, example directory) deployed to tt02
    # Orgs whose releases live in Azure Blob Storage (Azurite); the others' in their registry.
    azure_orgs: tuple[str, ...] = ()

    def clusters(self) -> list[tuple[str, str, str]]:
        return [
            (org, env, name)
            for org, envs in self.orgs.items()
            for env, names in envs.items()
            for name in names
        ]


DEMO = Topology(
    orgs={
        "ttd": {"tt02": ("tt02-1",), "production": ("prod-1", "prod-2")},
        "digdir": {"tt02": ("tt02-1",)},
    },
    apps=(("ttd/skjema", "platform-app"), ("digdir/varsel", "app-with-chart")),
    azure_orgs=("digdir",),
)
# The same orgs and sample apps with one tt02 cluster each and no production clusters: half the
# clusters (and real nodes) of DEMO, for a machine with less to spare.
SMALL = Topology(
    orgs={org: {"tt02": envs["tt02"][:1]} for org, envs in DEMO.orgs.items()},
    apps=DEMO.apps,
    azure_orgs=DEMO.azure_orgs,
)


def cluster_id(org: str, env: str, name: str) -> str:
    """The control plane's id of a cluster."""
    return f"{org}.{env}.{name}"


@dataclass
class PlatformState:
    root: Path
    topology: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    registries: dict[str, dict[str, Any]] = field(default_factory=dict)  # org → user/password
    azure_orgs: list[str] = field(default_factory=list)  # orgs whose store is Azurite
    clusters: dict[str, str] = field(default_factory=dict)  # cluster id → state directory
    operators: dict[str, ProcessRecord] = field(default_factory=dict)
    emulator: ProcessRecord | None = None
    emulator_url: str | None = None
    control: ProcessRecord | None = None
    control_url: str | None = None
    token: str | None = None
    gitea_url: str | None = None
    # org/app → the clone URL of its repository in the local Gitea
    repositories: dict[str, str] = field(default_factory=dict)
    # The demo's service owner in Gitea (``user``, ``password``): a member of every org.
    gitea_login: dict[str, str] = field(default_factory=dict)
    real_nodes: bool = False

    @property
    def host(self) -> str:
        """The address the platform's servers are reached at: by Pods too with real nodes."""
        return hostledger.HOST_ADDRESS if self.real_nodes else "127.0.0.1"

    @property
    def file(self) -> Path:
        return self.root / STATE_FILE

    def save(self) -> None:
        data = {
            "topology": self.topology,
            "registries": self.registries,
            "azure_orgs": self.azure_orgs,
            "clusters": self.clusters,
            "operators": {k: v.to_json() for k, v in self.operators.items()},
            "emulator": self.emulator.to_json() if self.emulator else None,
            "emulator_url": self.emulator_url,
            "control": self.control.to_json() if self.control else None,
            "control_url": self.control_url,
            "token": self.token,
            "gitea_url": self.gitea_url,
            "repositories": self.repositories,
            "gitea_login": self.gitea_login,
            "real_nodes": self.real_nodes,
        }
        write_state(self.file, data)

    @classmethod
    def load(cls, root: Path) -> PlatformState | None:
        data = read_state(root / STATE_FILE)
        if data is None:
            return None
        record = ProcessRecord.from_json
        return cls(
            root=root,
            topology=data["topology"],
            registries=data["registries"],
            azure_orgs=list(data.get("azure_orgs") or []),
            clusters=data["clusters"],
            operators={k: record(v) for k, v in data["operators"].items()},
            emulator=record(data["emulator"]) if data["emulator"] else None,
            emulator_url=data["emulator_url"],
            control=record(data["control"]) if data["control"] else None,
            control_url=data["control_url"],
            token=data["token"],
            gitea_url=data.get("gitea_url"),
            repositories=data.get("repositories") or {},
            gitea_login=data.get("gitea_login") or {},
            real_nodes=bool(data.get("real_nodes", False)),
        )


# ---- paths ---------------------------------------------------------------------------------


def _gitea_dir(root: Path) -> Path:
    return root / "gitea"


def _azurite_dir(root: Path) -> Path:
    return root / "azurite"


def azure_container(org: str) -> str:
    """The container an org's releases live in (one per org)."""
    return f"fjord-{org}"


def _registry_dir(root: Path, org: str) -> Path:
    return root / "registries" / org


def _cluster_dir(root: Path, cid: str) -> Path:
    return root / "clusters" / cid.replace(".", "-")


def _fjord(*args: str) -> list[str]:
    return [sys.executable, "-m", "fjord.cli", *args]


def _http_ok(url: str) -> bool:
    try:
        return httpx2.get(url, timeout=2.0).status_code == 200
    except httpx2.HTTPError:
        return False


# ---- bring-up ------------------------------------------------------------------------------


def up(
    root: Path,
    topology: Topology = DEMO,
    *,
    progress: Progress | None = None,
    deploy_apps: bool = True,
    flux_interval: str | None = None,
    real_nodes: bool = True,
) -> dict[str, Any]:
    """Start everything (or find it running) and deploy the sample apps; returns ``status``.

    With ``real_nodes`` every cluster has a real node (kubelet, containerd) and Traefik, the
    sample apps are built into images pushed to their org's registry and really run; without,
    the clusters have kwok nodes only (Pods are simulated; enough for tests of the control
    plane).

    ``flux_interval`` (e.g. ``"30s"``) becomes the control plane's ``FJORD_FLUX_INTERVAL``: how
    often Flux polls when no Receiver call comes (default: the control plane's own, ``10m``).
    """
    say = progress or (lambda _m: None)
    root = root.resolve()
    existing = PlatformState.load(root)
    clusters = {
        org: {env: list(n) for env, n in envs.items()} for org, envs in topology.orgs.items()
    }
    if (
        existing is not None
        and _all_running(existing)
        and (existing.real_nodes, existing.topology, existing.azure_orgs)
        == (real_nodes, clusters, list(topology.azure_orgs))
    ):
        say("the local platform is already running")
        return status(root)
    if existing is not None:
        say("cleaning up the remains of an earlier platform")
        down(root)
    state = PlatformState(
        root=root, topology=clusters, real_nodes=real_nodes, azure_orgs=list(topology.azure_orgs)
    )
    state.save()
    try:
        _start(state, topology, say, deploy_apps=deploy_apps, flux_interval=flux_interval)
    except BaseException:
        say("bring-up failed; stopping what was started")
        down(root)
        raise
    return status(root)


def _start(
    state: PlatformState,
    topology: Topology,
    say: Progress,
    *,
    deploy_apps: bool,
    flux_interval: str | None = None,
) -> None:
    root = state.root
    started = time.monotonic()
    supplier_key = generate_jwk("fjord-supplier-key")
    ids = [cluster_id(*c) for c in topology.clusters()]
    also_listen = None
    if state.real_nodes:
        # The host address (where Pods reach the servers) exists while the platform holds it.
        hostledger.claim(root)
        also_listen = state.host
    # Independent parts start side by side: registries, databases, emulator, Gitea, the sample
    # images and the clusters, one worker each.
    workers = len(ids) + len(topology.orgs) + 5
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        say(
            f"starting {len(ids)} clusters with Flux, {len(topology.orgs)} registries, Gitea, "
            "PostgreSQL, Redis and the Maskinporten emulator"
        )
        gitea_job = pool.submit(_start_gitea, root, topology)
        registry_jobs = {org: pool.submit(_start_registry, root, org) for org in topology.orgs}
        postgres_job = pool.submit(LocalPostgres.start, root / "postgres", also_listen=also_listen)
        redis_job = pool.submit(LocalRedis.start, root / "redis", also_listen=also_listen)
        emulator_job = pool.submit(_start_emulator, root, supplier_key, state.host)
        azurite_job = pool.submit(Azurite.start, _azurite_dir(root)) if state.azure_orgs else None
        images_job = pool.submit(sampleapps.build_images) if state.real_nodes else None
        cluster_jobs = {
            cid: pool.submit(_start_cluster, root, cid, registry_jobs[cid.split(".")[0]], state)
            for cid in ids
        }
        for org, registry_job in registry_jobs.items():
            registry = registry_job.result()
            state.registries[org] = {
                "host": registry.host,
                "username": registry.username,
                "password": registry.password,
            }
            state.save()
        postgres, redis = postgres_job.result(), redis_job.result()
        if azurite_job is not None:
            azurite_job.result()  # recorded in its directory; the config below reads it there
        state.emulator, state.emulator_url = emulator_job.result()
        gitea, repositories, reader_tokens = gitea_job.result()
        state.gitea_url = gitea.url
        state.gitea_login = {
            "user": DEMO_USER,
            "password": gitea.developer(DEMO_USER, sorted(topology.orgs)),
        }
        state.repositories = {name: repo.clone_url for name, repo in repositories.items()}
        state.save()
        say("starting the control plane")
        state.control, state.control_url = _start_control_plane(state, topology, flux_interval)
        state.save()
        state.token = _admin_token(state)
        state.save()
        asyncio.run(_set_credentials(state, reader_tokens))
        clusters: dict[str, ClusterState] = {}
        for cid, cluster_job in cluster_jobs.items():
            clusters[cid] = cluster_job.result()
            state.clusters[cid] = str(clusters[cid].directory)
            state.save()
        built = images_job.result() if images_job is not None else None
    say(f"infrastructure up in {time.monotonic() - started:.0f}s; bootstrapping clusters")
    asyncio.run(_bootstrap_all(state, clusters, postgres, redis, supplier_key, say))
    if built is not None:
        say("pushing the sample apps' images to their orgs' registries")
        asyncio.run(sampleapps.push_images(state.registries, built))
    if deploy_apps and topology.apps:
        asyncio.run(_deploy_samples(state, topology, say))
    say(f"local platform ready in {time.monotonic() - started:.0f}s")


def _start_gitea(
    root: Path, topology: Topology
) -> tuple[LocalGitea, dict[str, SeededRepo], dict[str, str]]:
    """Gitea with every org of the topology and the sample apps pushed (main + tag v1.0.0)."""
    gitea = LocalGitea.start(_gitea_dir(root))
    repos = {name: EXAMPLES / example for name, example in topology.apps}
    for org in topology.orgs:
        gitea.create_org(org)
    seeded, tokens = seed(gitea, repos)
    for org in topology.orgs:  # orgs without sample apps get a read token too
        if org not in tokens:
            tokens[org] = gitea.reader_token(org)
    return gitea, seeded, tokens


async def _set_credentials(state: PlatformState, tokens: Mapping[str, str]) -> None:
    """Each org's Gitea read token becomes its fetch credential in the control plane."""
    async with _api(state) as api:
        for org, token in tokens.items():
            await api.set_credential(org, token)


def _start_cluster(
    root: Path,
    cid: str,
    registry_job: concurrent.futures.Future[LocalRegistry],
    state: PlatformState,
) -> ClusterState:
    cluster = LocalCluster(_cluster_dir(root, cid), cid.replace(".", "-"))
    if not state.real_nodes:
        return cluster.up(flux=True)
    # The node pulls from its org's registry with the org's credentials, known before it starts.
    registry = registry_job.result()
    return cluster.up(
        flux=True,
        nodes=0,
        real_node=True,
        # Four kube-proxies would fight over the machine's one set of KUBE-* chains, and nothing
        # here needs ClusterIPs: Traefik sends requests to the Pod IPs directly.
        kube_proxy=False,
        registry_auth={registry.host: (registry.username or "", registry.password or "")},
    )


def _start_registry(root: Path, org: str) -> LocalRegistry:
    return LocalRegistry.start(
        _registry_dir(root, org), username=org, password=secrets.token_urlsafe(16)
    )


def _start_emulator(
    root: Path, supplier_key: dict[str, Any], host: str = "127.0.0.1"
) -> tuple[ProcessRecord, str]:
    directory = root / "maskinporten"
    directory.mkdir(parents=True, exist_ok=True)
    jwks = directory / "supplier-jwks.json"
    jwks.write_text(json.dumps(public_jwks([supplier_key])))
    record, port = processes.start_server(
        "maskinporten-emulator",
        lambda p: _fjord(
            "maskinporten",
            "emulator",
            "--supplier-jwks",
            str(jwks),
            "--supplier-client-id",
            SUPPLIER_CLIENT_ID,
            "--port",
            str(p),
            "--allow-any-scope",
            "--log-level",
            "warning",
            "--host",
            host,
        ),
        log=directory / "emulator.log",
        ready=lambda p: _http_ok(f"http://127.0.0.1:{p}/.well-known/oauth-authorization-server"),
    )
    return record, f"http://{host}:{port}/"


def platform_config(state: PlatformState) -> dict[str, Any]:
    """The platform config the control plane serves (as a YAML-able mapping)."""
    orgs: dict[str, Any] = {}
    azurite = Azurite.load(_azurite_dir(state.root))
    for org, envs in state.topology.items():
        registry = state.registries[org]
        store: dict[str, Any] = {"kind": "oci", "registry": registry["host"], "plain_http": True}
        if org in state.azure_orgs:
            if azurite is None:
                raise FjordError(f"org {org} keeps its releases in Azurite, which is not running")
            store = {
                "kind": "azure",
                "account_url": azurite.blob_endpoint,
                "container": azure_container(org),
            }
        orgs[org] = {
            "store": store,
            "clusters": {env: [{"name": n} for n in names] for env, names in envs.items()},
        }
    return {
        "domain": "fjord.localhost",
        "environments": [{"name": env} for env in ENVIRONMENTS],
        "orgs": orgs,
        # Plain Ingress of Traefik's class: the local clusters have no Traefik or Gateway API
        # CRDs; with real nodes each runs Traefik, which serves only Ingresses of its own
        # IngressClass (the flavour's default class, nginx, would be left unserved: 404).
        "routing": {"flavour": "ingress", "ingress_class_name": traefik.INGRESS_CLASS},
    }


def _control_env(state: PlatformState) -> dict[str, str]:
    auth = ",".join(
        f"{r['host']}={r['username']}:{r['password']}" for r in state.registries.values()
    )
    env = {
        "FJORD_DATA_DIR": str(state.root / "control"),
        "FJORD_PLATFORM": str(state.root / "platform.yaml"),
        "FJORD_REGISTRY_AUTH": auth,
        "PYTHONUNBUFFERED": "1",
    }
    azurite = Azurite.load(_azurite_dir(state.root))
    if azurite is not None:
        # fjord writes with the account key; clusters get a read-only SAS per org's container.
        env["FJORD_AZURE_KEYS"] = f"{azurite.blob_endpoint}={AZURITE_ACCOUNT_KEY}"
    gitea = LocalGitea.load(_gitea_dir(state.root))
    if gitea is not None:
        # The admin's token: fjord registers webhooks and posts commit statuses with it.
        env["FJORD_GITEA_URL"], env["FJORD_GITEA_TOKEN"] = gitea.url, gitea.token
        # Sign-in through Gitea: fjord is its OAuth2 application (UI and CLI).
        oidc = gitea.register_fjord()
        env["FJORD_OIDC_ISSUER"] = oidc["issuer"]
        env["FJORD_OIDC_CLIENT_ID"] = oidc["client_id"]
        env["FJORD_OIDC_CLI_CLIENT_ID"] = oidc["cli_client_id"]
    return env


def _start_control_plane(
    state: PlatformState, topology: Topology, flux_interval: str | None = None
) -> tuple[ProcessRecord, str]:
    (state.root / "platform.yaml").write_text(yaml.safe_dump(platform_config(state)))
    env = _control_env(state)
    if flux_interval:
        env["FJORD_FLUX_INTERVAL"] = flux_interval
    # kwok makes workloads Available within seconds, so a release that is not healthy after a
    # minute will not become so: fail it then, not after Flux's usual five minutes. Real Pods
    # pull their image and pass their readiness probe first: two minutes.
    default_timeout = "120s" if state.real_nodes else "60s"
    env["FJORD_KUSTOMIZATION_TIMEOUT"] = os.environ.get(
        "FJORD_KUSTOMIZATION_TIMEOUT", default_timeout
    )
    record, port = processes.start_server(
        "fjord-serve",
        lambda p: _fjord("serve", "--port", str(p), "--public-url", f"http://127.0.0.1:{p}"),
        log=state.root / "control.log",
        env=env,
        ready=lambda p: _http_ok(f"http://127.0.0.1:{p}/openapi.json"),
        timeout=120,
    )
    return record, f"http://127.0.0.1:{port}"


def _admin_token(state: PlatformState) -> str:
    result = subprocess.run(
        _fjord(
            "token", "create", "--name", "dev-admin", "--role", "*=platform-admin", "-o", "json"
        ),
        env={**os.environ, **_control_env(state)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise FjordError(f"creating the admin token failed: {result.stderr.strip()}")
    return str(json.loads(result.stdout)["token"])


def _api(state: PlatformState) -> FjordClient:
    """The control plane's HTTP API with the platform's admin token."""
    if not (state.control_url and state.token):
        raise FjordError("the control plane is not running")
    return FjordClient.remote(state.control_url, state.token, timeout=60.0)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def _bootstrap_all(
    state: PlatformState,
    clusters: Mapping[str, ClusterState],
    postgres: LocalPostgres,
    redis: LocalRedis,
    supplier_key: dict[str, Any],
    say: Progress,
) -> None:
    api = _api(state)
    supplier = MaskinportenSettings.for_issuer(
        issuer=state.emulator_url or "",
        client_id=SUPPLIER_CLIENT_ID,
        jwk=supplier_key,
        scopes=list(ADMIN_SCOPES[:5]),
    )
    try:
        await asyncio.gather(
            *(
                _bootstrap_cluster(state, api, cid, cluster, postgres, redis, supplier)
                for cid, cluster in clusters.items()
            )
        )
    finally:
        await api.aclose()
    for cid, cluster in clusters.items():
        state.operators[cid] = _start_operator(state, cid, cluster)
        state.save()
    say(f"{len(clusters)} clusters bootstrapped, operators running")


async def _bootstrap_cluster(
    state: PlatformState,
    api: FjordClient,
    cid: str,
    cluster: ClusterState,
    postgres: LocalPostgres,
    redis: LocalRedis,
    supplier: MaskinportenSettings,
) -> None:
    org, env, name = cid.split(".")
    async with await Kube.connect(cluster.kubeconfig) as kube:
        for path in sorted(CRD_DIR.glob("*.yaml")):
            await kube.apply(
                yaml.safe_load(path.read_text()), field_manager="fjord-dev", force=True
            )
        await kube.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}}
        )
        # Operator configuration lives in Secrets of the cluster, never in the CRs apps own.
        await kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": CREDENTIALS_ADMIN_SECRET, "namespace": SYSTEM_NAMESPACE},
                # The address the apps' Secrets will name: one their Pods can reach.
                "data": {
                    "postgresql-url": _b64(postgres.dsn_at(state.host)),
                    "redis-url": _b64(redis.url_at(state.host)),
                },
            },
            field_manager="fjord-dev",
            force=True,
        )
        await kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": SUPPLIER_SECRET, "namespace": SYSTEM_NAMESPACE},
                "data": {k: _b64(v) for k, v in supplier.to_secret_data().items()},
            },
            field_manager="fjord-dev",
            force=True,
        )
        for path in sorted(CRD_DIR.glob("*.yaml")):
            crd_name = yaml.safe_load(path.read_text())["metadata"]["name"]
            await kube.wait_for(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                crd_name,
                until=lambda o: is_true(o, "Established"),
            )
        objects = await api.bootstrap(org, env, name)
        for obj in objects:
            await kube.apply(obj, field_manager="fjord-bootstrap", force=True)
    await api.set_receiver(cid, cluster.flux_receiver_url)


def _start_operator(state: PlatformState, cid: str, cluster: ClusterState) -> ProcessRecord:
    record, _ = processes.start_server(
        f"operator-{cid}",
        # The operators' lean entry point: the same arguments without loading the whole CLI.
        lambda p: [
            sys.executable,
            "-m",
            "fjord.operators.common.main",
            "operator",
            "run",
            "--all-namespaces",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--credentials-admin-secret",
            f"{SYSTEM_NAMESPACE}/{CREDENTIALS_ADMIN_SECRET}",
            "--liveness",
            f"127.0.0.1:{p}",
            "--metrics",
            "",
            "--option",
            f"maskinporten.api-url={state.emulator_url}",
            "--option",
            f"maskinporten.client-orgno={APP_ORGNO}",
            "--option",
            f"maskinporten.platform-id={cid}",
            "--option",
            f"maskinporten.supplier-secret={SYSTEM_NAMESPACE}/{SUPPLIER_SECRET}",
            # Pod failures a real kubelet reports go to fjord through Flux's notifications.
            "--option",
            f"workloads.events-url={cluster.flux_events_url}",
        ],
        log=state.root / "operators" / f"{cid}.log",
        env={"KUBECONFIG": str(cluster.kubeconfig), "PYTHONUNBUFFERED": "1"},
        ready=lambda p: _http_ok(f"http://127.0.0.1:{p}/healthz"),
        timeout=120,
    )
    return record


async def _deploy_samples(state: PlatformState, topology: Topology, say: Progress) -> None:
    async with _api(state) as api:
        for name, _ in topology.apps:
            # Tags v* build releases; a push to main deploys its head to tt02 (the webhook).
            await api.create_app(
                name, state.repositories[name], deploy_branch="main", deploy_environment="tt02"
            )
        say(
            "deploying the sample apps (tag v1.0.0) to tt02: "
            + ", ".join(n for n, _ in topology.apps)
        )
        started = [await api.deploy(name, "tt02", ref="v1.0.0") for name, _ in topology.apps]
        for deployment in started:
            final = await api.wait_deployment(deployment.id)
            if final.state != states.READY:
                raise FjordError(
                    f"deploying the sample app {final.org}/{final.app} failed: {final.reason}"
                )


# ---- down and status -----------------------------------------------------------------------


def _all_running(state: PlatformState) -> bool:
    records = [*state.operators.values(), state.emulator, state.control]
    if not all(r is not None and processes.is_alive(r) for r in records):
        return False
    gitea = LocalGitea.load(_gitea_dir(state.root))
    if gitea is None or not gitea.running():
        return False
    if state.azure_orgs:
        azurite = Azurite.load(_azurite_dir(state.root))
        if azurite is None or not azurite.running():
            return False
    if not state.clusters:
        return False
    return all(LocalCluster(Path(d)).status().get("running") for d in state.clusters.values())


def down(root: Path) -> list[str]:
    """Stop everything the platform started, newest first, and remove its state."""
    root = root.resolve()
    removed: list[str] = []
    state = PlatformState.load(root)
    if state is not None:
        servers = [*state.operators.values(), state.control, state.emulator]
        processes.stop_all([r for r in servers if r is not None])
        removed += [f"operator {cid}" for cid in state.operators]
        removed += [
            n for n, r in (("control plane", state.control), ("emulator", state.emulator)) if r
        ]
    # Clusters and servers are found by directory, so a bring-up that died before recording
    # them is cleaned up too. Clusters stop side by side.
    directories = sorted((root / "clusters").glob("*"))
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(directories))) as pool:
        stopped = list(pool.map(lambda d: LocalCluster(d).down(), directories))
    removed += [f"cluster {d.name}" for d, ok in zip(directories, stopped, strict=True) if ok]
    for directory in sorted((root / "registries").glob("*")):
        registry = LocalRegistry.load(directory)
        if registry is not None:
            registry.stop()
            removed.append(f"registry {directory.name}")
    postgres = LocalPostgres.load(root / "postgres")
    if postgres is not None:
        postgres.destroy()
        removed.append("postgresql")
    gitea = LocalGitea.load(_gitea_dir(root))
    if gitea is not None:
        gitea.stop()
        removed.append("gitea")
    redis = LocalRedis.load(root / "redis")
    if redis is not None:
        redis.destroy()
        removed.append("redis")
    azurite = Azurite.load(_azurite_dir(root))
    if azurite is not None:
        azurite.stop()
        removed.append("azurite")
    if hostledger.held_slot(root) is not None:
        hostledger.release(root)
    if root.exists():
        shutil.rmtree(root, ignore_errors=True)
    return removed


def status(root: Path) -> dict[str, Any]:
    """Where everything is, whether it runs, and (if the control plane runs) the app matrix."""
    root = root.resolve()
    state = PlatformState.load(root)
    if state is None:
        return {"running": False, "parts": [], "hints": ["start it with: make demo"]}
    parts: list[dict[str, Any]] = []

    def part(name: str, where: str, running: bool) -> None:
        parts.append({"name": name, "where": where, "running": running})

    if state.control is not None:
        part("control plane + web UI", state.control_url or "-", processes.is_alive(state.control))
    if state.emulator is not None:
        part("Maskinporten emulator", state.emulator_url or "-", processes.is_alive(state.emulator))
    for org in state.topology:
        registry = LocalRegistry.load(_registry_dir(root, org))
        part(
            f"registry of {org}",
            registry.url if registry else "-",
            bool(registry and registry.running()),
        )
    postgres = LocalPostgres.load(root / "postgres")
    part(
        "PostgreSQL",
        f"127.0.0.1:{postgres.port}" if postgres else "-",
        bool(postgres and postgres.running()),
    )
    redis = LocalRedis.load(root / "redis")
    part("Redis", redis.url.split("@")[-1] if redis else "-", bool(redis and redis.running()))
    if state.azure_orgs:
        azurite = Azurite.load(_azurite_dir(root))
        part(
            f"Azurite (releases of {', '.join(state.azure_orgs)})",
            azurite.blob_endpoint if azurite else "-",
            bool(azurite and azurite.running()),
        )
    gitea = LocalGitea.load(_gitea_dir(root))
    part("Gitea (apps' repositories)", gitea.url if gitea else "-", bool(gitea and gitea.running()))
    for cid, directory in state.clusters.items():
        info = LocalCluster(Path(directory)).status()
        operator = state.operators.get(cid)
        running = bool(info.get("ready")) and operator is not None and processes.is_alive(operator)
        part(f"cluster {cid} (+ Flux, operators)", info.get("kubeconfig", "-"), running)
    matrix = (
        _matrix(state) if state.control is not None and processes.is_alive(state.control) else []
    )
    urls = _app_urls(state) if state.real_nodes else []
    hints = [f"app: {u['curl']}" for u in urls]
    if state.control_url and state.token:
        hints.append(f"web UI: {state.control_url}/  (sign in with the token below)")
        hints.append(f"export FJORD_SERVER={state.control_url} FJORD_TOKEN={state.token}")
    if gitea is not None and state.gitea_login:
        login = state.gitea_login
        hints.append(
            f"Gitea: {gitea.url}/  (sign in as {login['user']}, password {login['password']}; "
            f"a member of {', '.join(sorted(state.topology))}; the admin is {gitea.admin}, "
            f"password in {gitea.state_dir}/gitea.json)"
        )
        for name, clone in sorted(state.repositories.items()):
            hints.append(f"{name}: git clone {clone}")
        hints.append("register an app by repository: fjord app create ORG/APP --repo CLONE_URL")
    hints.append("stop everything with: make down  (or: .venv/bin/fjord dev down)")
    return {
        "running": bool(parts) and all(p["running"] for p in parts),
        "parts": parts,
        "apps": matrix,
        "control_url": state.control_url,
        "token": state.token,
        "clusters": state.clusters,
        "emulator_url": state.emulator_url,
        "registries": {org: r["host"] for org, r in state.registries.items()},
        "azure_orgs": {org: azure_container(org) for org in state.azure_orgs},
        "gitea_url": state.gitea_url,
        "repositories": state.repositories,
        "gitea_login": state.gitea_login,
        "urls": urls,
        "real_nodes": state.real_nodes,
        "hints": hints,
    }


def _app_urls(state: PlatformState) -> list[dict[str, str]]:
    """Where each routed app answers: Traefik's port on loopback and the Host header to send."""
    urls = []
    for cid, directory in sorted(state.clusters.items()):
        cluster = ClusterState.load(Path(directory))
        if cluster is None or cluster.ingress_url is None:
            continue
        try:
            with KubeREST(cluster.server, cluster.pki) as kube:
                ingresses = kube.get("/apis/networking.k8s.io/v1/ingresses").get("items", [])
        except (httpx2.HTTPError, KubeAPIError):  # a cluster that is down has no routes to show
            continue
        for ingress in ingresses:
            for rule in ingress.get("spec", {}).get("rules", []):
                for path in rule.get("http", {}).get("paths", []):
                    url = f"{cluster.ingress_url}{path['path']}"
                    urls.append(
                        {
                            "cluster": cid,
                            "host": rule.get("host", ""),
                            "url": url,
                            "curl": f"curl -H 'Host: {rule.get('host', '')}' {url}",
                        }
                    )
    return urls


def _matrix(state: PlatformState) -> list[dict[str, Any]]:
    """One row per app, environment and cluster, from the control plane's status."""

    async def read() -> list[AppStatusView]:
        async with FjordClient.remote(state.control_url or "", state.token, timeout=10) as api:
            return await api.matrix()

    try:
        apps = asyncio.run(read())
    except ClientError:
        return []
    return [
        {
            "app": app.app,
            "environment": env.environment,
            "cluster": cell.cluster,
            "ready": cell.ready,
            "revision": cell.revision,
            "message": cell.message,
        }
        for app in apps
        for env in app.environments
        for cell in env.clusters
    ]
