"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, controller-manager,
scheduler and kwok (fake nodes that "run" pods), optionally with Flux's source, kustomize and
notification controllers as local processes.

Everything a cluster needs is under one state directory; ``state.json`` there records every port
and process, so ``down`` works from any later process, also after a crash.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import yaml

from fjord.devcluster import apirelay, binaries, hostledger, node, processes, traefik
from fjord.devcluster.kubeclient import KubeREST
from fjord.devcluster.pki import ClusterPKI, generate, write_kubeconfig
from fjord.devcluster.processes import ComponentFailed, ProcessRecord
from fjord.devcluster.statefile import read_state, write_state
from fjord.errors import FjordError

Progress = Callable[[str], None]

STATE_FILE = "state.json"
FLUX_NAMESPACE = "flux-system"
APISERVER_TIMEOUT = 120.0  # slow CI runners report 30-35 s apiserver starts
COMPONENT_TIMEOUT = 60.0
NODE_TIMEOUT = 120.0  # kubelet registers, then reports Ready once containerd's CNI is set up


class ClusterError(FjordError):
    pass


def default_state_root() -> Path:
    """Where dev clusters keep their state unless told otherwise (``FJORD_STATE_DIR``)."""
    configured = os.environ.get("FJORD_STATE_DIR")
    return Path(configured) if configured else Path.home() / ".local" / "state" / "fjord"


@dataclass
class ClusterState:
    """What ``up`` wrote down: enough for ``status`` and ``down`` in another process."""

    name: str
    directory: Path
    ports: dict[str, int] = field(default_factory=dict)
    processes: list[ProcessRecord] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    flux: bool = False
    real_node: dict[str, Any] | None = None  # name, slot and address of the kubelet node

    @property
    def node_layout(self) -> node.NodeLayout:
        return node.NodeLayout(self.directory, self.name)

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def pki(self) -> ClusterPKI:
        return ClusterPKI(self.directory / "pki")

    @property
    def ingress_url(self) -> str | None:
        """Traefik's entry point, when the cluster has a real node and Traefik is built."""
        port = self.ports.get("ingress")
        return f"http://127.0.0.1:{port}" if port else None

    @property
    def flux_storage_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['source-storage']}"

    @property
    def flux_receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['notification-receiver']}"

    @property
    def flux_events_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['notification-events']}/"

    def save(self) -> None:
        data = {
            "name": self.name,
            "ports": self.ports,
            "processes": [p.to_json() for p in self.processes],
            "nodes": self.nodes,
            "flux": self.flux,
            "real_node": self.real_node,
        }
        write_state(self.directory / STATE_FILE, data)

    @classmethod
    def load(cls, directory: Path) -> ClusterState | None:
        data = read_state(directory / STATE_FILE)
        if data is None:
            return None
        return cls(
            name=data["name"],
            directory=directory,
            ports={k: int(v) for k, v in data["ports"].items()},
            processes=[ProcessRecord.from_json(p) for p in data["processes"]],
            nodes=list(data.get("nodes", [])),
            flux=bool(data.get("flux", False)),
            real_node=data.get("real_node"),
        )

    def memory_rss_bytes(self) -> int:
        """Resident memory of every live component, summed."""
        total = 0
        for record in self.processes:
            if not processes.is_alive(record):
                continue
            try:
                for line in Path(f"/proc/{record.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total


def _http_ok(url: str, *, expect: str | None = None, **kwargs: Any) -> bool:
    response = httpx2.get(url, timeout=2.0, **kwargs)
    return response.status_code == 200 and (expect is None or expect in response.text)


def _insecure_ok(url: str) -> bool:
    # The controller-manager and scheduler serve health with self-signed certificates.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return _http_ok(url, expect="ok", verify=context)


class LocalCluster:
    """One local cluster, identified by its state directory."""

    def __init__(self, directory: Path, name: str | None = None) -> None:
        self.directory = directory.resolve()
        self.name = name or self.directory.name

    # ---- lifecycle ------------------------------------------------------------------------

    def up(
        self,
        *,
        nodes: int = 1,
        flux: bool = False,
        real_node: bool = False,
        kube_proxy: bool = True,
        registry_auth: Mapping[str, tuple[str, str]] | None = None,
        progress: Progress | None = None,
    ) -> ClusterState:
        """Start every component and wait until nodes are Ready; on any failure stop them all.

        ``nodes`` kwok fake nodes, plus with ``real_node`` one kubelet node that runs Pods for
        real (containerd, the CNI bridge and, with ``kube_proxy``, Services). With a real node
        the fake ones carry a NoSchedule taint: only Pods that tolerate it land there.
        ``registry_auth`` (``{host:port: (user, password)}``): plain-HTTP registries on this
        machine the node pulls from, with those credentials. With a real node and Traefik
        built, Traefik serves the cluster's Ingresses (``ingress_url``).
        """
        say = progress or (lambda _msg: None)
        existing = ClusterState.load(self.directory)
        if existing is not None:
            if (
                all(processes.is_alive(p) for p in existing.processes)
                and existing.flux == flux
                and (existing.real_node is not None) == real_node
            ):
                say(f"cluster {self.name} is already running")
                return existing
            say(f"cleaning up the remains of cluster {self.name}")
            self.down()
        bins = binaries.locate()
        node_bins = binaries.locate_group("node") if real_node else None
        if real_node:
            node.required_programs()
        self.directory.mkdir(parents=True, exist_ok=True)
        state = ClusterState(name=self.name, directory=self.directory, flux=flux)
        try:
            self._start(
                state,
                bins,
                nodes=nodes,
                flux=flux,
                node_bins=node_bins,
                kube_proxy=kube_proxy,
                registry_auth=dict(registry_auth or {}),
                say=say,
            )
        except BaseException:
            state.save()
            self.down()
            raise
        state.save()
        return state

    def down(self) -> bool:
        """Stop every recorded process (newest first) and remove the state; True if it existed."""
        state = ClusterState.load(self.directory)
        layout = node.NodeLayout(self.directory, state.name if state else self.name)
        if layout.root.exists() or hostledger.held_slot(self.directory) is not None:
            # The node first, in order: its Pods, mounts and network before the control plane.
            node_bins = None
            with contextlib.suppress(binaries.BuildError):
                node_bins = binaries.locate_group("node")
            node.teardown(layout, state.processes if state else [], node_bins=node_bins)
        if state is not None:
            processes.stop_all(state.processes)
        existed = state is not None or self.directory.exists()
        shutil.rmtree(self.directory, ignore_errors=True)
        return existed

    def state(self) -> ClusterState | None:
        return ClusterState.load(self.directory)

    def status(self) -> dict[str, Any]:
        state = ClusterState.load(self.directory)
        if state is None:
            return {"name": self.name, "running": False, "components": {}}
        components = {p.name: processes.is_alive(p) for p in state.processes}
        ready = False
        if components and all(components.values()):
            try:
                with KubeREST(state.server, state.pki) as kube:
                    ready = kube.get_text("/readyz") == "ok"
            except Exception:
                ready = False
        return {
            "name": state.name,
            "running": bool(components) and all(components.values()),
            "ready": ready,
            "server": state.server,
            "kubeconfig": str(state.kubeconfig),
            "components": components,
            "nodes": state.nodes,
            "flux": state.flux,
            "real_node": state.real_node,
            "ingress_url": state.ingress_url,
            "ports": state.ports,
            "memory_rss_bytes": state.memory_rss_bytes(),
        }

    # ---- start-up steps -------------------------------------------------------------------

    def _start(
        self,
        state: ClusterState,
        bins: Path,
        *,
        nodes: int,
        flux: bool,
        node_bins: Path | None,
        kube_proxy: bool,
        registry_auth: dict[str, tuple[str, str]],
        say: Progress,
    ) -> None:
        started = time.monotonic()
        logs = self.directory / "logs"
        for port in (
            "etcd",
            "etcd-peer",
            "apiserver",
            "controller-manager",
            "scheduler",
        ):
            state.ports[port] = processes.free_port()
        pki = generate(self.directory / "pki")
        write_kubeconfig(state.kubeconfig, name=self.name, server=state.server, pki=pki)

        say("starting etcd")
        etcd = self._spawn(state, "etcd", [str(bins / "etcd"), *self._etcd_flags(state)], logs)
        processes.wait_until(
            "etcd health",
            lambda: _http_ok(f"http://127.0.0.1:{state.ports['etcd']}/health", expect="true"),
            watch=[etcd],
            timeout=COMPONENT_TIMEOUT,
        )

        say("starting kube-apiserver")
        apiserver = self._spawn(
            state,
            "kube-apiserver",
            [str(bins / "kube-apiserver"), *self._apiserver_flags(state)],
            logs,
        )
        with KubeREST(state.server, pki) as kube:
            processes.wait_until(
                "kube-apiserver /readyz",
                lambda: kube.get_text("/readyz") == "ok",
                watch=[etcd, apiserver],
                timeout=APISERVER_TIMEOUT,
                interval=0.2,
            )
            say("starting controller-manager, scheduler and kwok")
            kcm = self._spawn(
                state,
                "kube-controller-manager",
                [str(bins / "kube-controller-manager"), *self._kcm_flags(state)],
                logs,
            )
            scheduler = self._spawn(
                state,
                "kube-scheduler",
                [str(bins / "kube-scheduler"), *self._scheduler_flags(state)],
                logs,
            )
            kwok = self._spawn(
                state,
                "kwok",
                [str(bins / "kwok"), *self._kwok_flags(state, bins)],
                logs,
                env={"KWOK_WORKDIR": str(self.directory / "kwok")},
            )
            if flux:
                # The CRDs go in while the controllers start; Flux's controllers need them first.
                say("installing Flux CRDs")
                install_flux_crds(kube, bins / "flux-crds")
            control = [etcd, apiserver, kcm, scheduler, kwok]
            for index in range(nodes):
                name = f"{self.name}-node-{index}"
                kube.apply(f"/api/v1/nodes/{name}", fake_node(name, tainted=node_bins is not None))
                state.nodes.append(name)
            if node_bins is not None:
                say("starting the real node (containerd, CNI bridge, kubelet)")
                state.real_node = node.start(
                    node.NodeStart(
                        layout=state.node_layout,
                        node_bins=node_bins,
                        kubeconfig=state.kubeconfig,
                        ca_file=state.pki.ca_cert,
                        spawn=lambda name, argv: self._spawn(state, name, argv, logs),
                        watch=control,
                        say=say,
                        kube_proxy=kube_proxy,
                        registry_auth=registry_auth,
                    )
                )
                state.nodes.append(state.real_node["name"])
                state.save()
                if kube_proxy:
                    self._serve_api_to_pods(state, kube, logs, control)
            processes.wait_until(
                "controller-manager and scheduler health",
                lambda: (
                    _insecure_ok(f"https://127.0.0.1:{state.ports['controller-manager']}/healthz")
                    and _insecure_ok(f"https://127.0.0.1:{state.ports['scheduler']}/healthz")
                ),
                watch=control,
                timeout=COMPONENT_TIMEOUT,
            )
            say(f"waiting for {len(state.nodes)} node(s) to be Ready and schedulable")
            processes.wait_until(
                "nodes Ready without the not-ready taint",
                lambda: all(_node_schedulable(kube.get(f"/api/v1/nodes/{n}")) for n in state.nodes),
                watch=control,
                timeout=NODE_TIMEOUT if node_bins is not None else COMPONENT_TIMEOUT,
                interval=0.2,
            )
            processes.wait_until(
                "the default ServiceAccount",
                lambda: (
                    kube.get_or_none("/api/v1/namespaces/default/serviceaccounts/default")
                    is not None
                ),
                watch=control,
                timeout=COMPONENT_TIMEOUT,
            )
            if flux:
                self._start_flux(state, bins, kube, logs, control, say)
            if node_bins is not None and traefik.available():
                self._start_traefik(state, kube, logs, control, say)
        say(f"cluster {self.name} ready in {time.monotonic() - started:.1f}s")

    def _spawn(
        self,
        state: ClusterState,
        name: str,
        argv: list[str],
        logs: Path,
        env: dict[str, str] | None = None,
    ) -> ProcessRecord:
        record = processes.start(name, argv, log=logs / f"{name}.log", env=env, cwd=self.directory)
        state.processes.append(record)
        state.save()  # written after every start, so a crash of `up` itself leaves nothing behind
        return record

    def _serve_api_to_pods(
        self, state: ClusterState, kube: KubeREST, logs: Path, control: list[ProcessRecord]
    ) -> None:
        """In-cluster API access for Pods (kube-proxy sends the kubernetes Service to the relay
        on the node's bridge address; :mod:`.apirelay`)."""
        assert state.real_node is not None
        address = state.real_node["address"]
        state.ports["apiserver-relay"] = port = processes.free_port()
        record = self._spawn(
            state,
            "apiserver-relay",
            apirelay.argv(address, port, state.ports["apiserver"]),
            logs,
        )
        processes.wait_until(
            "the apiserver relay",
            lambda: apirelay.listening(address, port),
            watch=[*control, record],
            timeout=COMPONENT_TIMEOUT,
        )
        kube.apply(
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes",
            apirelay.endpoint_slice(address, port),
        )

    def _start_traefik(
        self,
        state: ClusterState,
        kube: KubeREST,
        logs: Path,
        control: list[ProcessRecord],
        say: Progress,
    ) -> None:
        say("starting Traefik")
        # Ingresses that name a class are served only if that IngressClass is Traefik's.
        kube.apply(
            f"/apis/networking.k8s.io/v1/ingressclasses/{traefik.INGRESS_CLASS}",
            traefik.ingress_class(),
        )
        state.ports["ingress"] = processes.free_port()
        state.ports["ingress-ping"] = processes.free_port()
        record = self._spawn(
            state,
            "traefik",
            traefik.argv(web_port=state.ports["ingress"], ping_port=state.ports["ingress-ping"]),
            logs,
            env=traefik.env(state.kubeconfig),
        )
        processes.wait_until(
            "Traefik /ping",
            lambda: traefik.ready(state.ports["ingress-ping"]),
            watch=[*control, record],
            timeout=COMPONENT_TIMEOUT,
        )

    def _start_flux(
        self,
        state: ClusterState,
        bins: Path,
        kube: KubeREST,
        logs: Path,
        control: list[ProcessRecord],
        say: Progress,
    ) -> None:
        for port in (
            "source-storage",
            "source-metrics",
            "source-health",
            "kustomize-metrics",
            "kustomize-health",
            "notification-events",
            "notification-receiver",
            "notification-metrics",
            "notification-health",
        ):
            state.ports[port] = processes.free_port()
        kube.apply(
            f"/api/v1/namespaces/{FLUX_NAMESPACE}",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": FLUX_NAMESPACE}},
        )
        storage = self.directory / "flux-storage"
        storage.mkdir(exist_ok=True)
        p = state.ports
        env = {"KUBECONFIG": str(state.kubeconfig), "RUNTIME_NAMESPACE": FLUX_NAMESPACE}
        common = [
            "--log-level=info",
            "--log-encoding=json",
            f"--events-addr={state.flux_events_url}",
        ]
        say("starting Flux source-, kustomize- and notification-controller")
        flux = [
            self._spawn(
                state,
                "source-controller",
                [
                    str(bins / "source-controller"),
                    f"--storage-path={storage}",
                    f"--storage-addr=127.0.0.1:{p['source-storage']}",
                    f"--storage-adv-addr=127.0.0.1:{p['source-storage']}",
                    f"--metrics-addr=127.0.0.1:{p['source-metrics']}",
                    f"--health-addr=127.0.0.1:{p['source-health']}",
                    *common,
                ],
                logs,
                env,
            ),
            self._spawn(
                state,
                "kustomize-controller",
                [
                    str(bins / "kustomize-controller"),
                    f"--metrics-addr=127.0.0.1:{p['kustomize-metrics']}",
                    f"--health-addr=127.0.0.1:{p['kustomize-health']}",
                    # A fix deployed over a broken release is applied at once, not after the
                    # broken one's health check times out (Flux's opt-in since v1.7).
                    "--feature-gates=CancelHealthCheckOnNewRevision=true",
                    *common,
                ],
                logs,
                env,
            ),
            self._spawn(
                state,
                "notification-controller",
                [
                    str(bins / "notification-controller"),
                    f"--events-addr=127.0.0.1:{p['notification-events']}",
                    f"--receiverAddr=127.0.0.1:{p['notification-receiver']}",
                    f"--metrics-addr=127.0.0.1:{p['notification-metrics']}",
                    f"--health-addr=127.0.0.1:{p['notification-health']}",
                    "--rate-limit-interval=1s",
                    "--log-level=info",
                    "--log-encoding=json",
                ],
                logs,
                env,
            ),
        ]
        processes.wait_until(
            "Flux controllers /readyz",
            lambda: all(
                _http_ok(f"http://127.0.0.1:{p[name]}/readyz")
                for name in ("source-health", "kustomize-health", "notification-health")
            ),
            watch=[*control, *flux],
            timeout=COMPONENT_TIMEOUT,
            interval=0.2,
        )

    # ---- flags ----------------------------------------------------------------------------

    def _etcd_flags(self, state: ClusterState) -> list[str]:
        client = f"http://127.0.0.1:{state.ports['etcd']}"
        peer = f"http://127.0.0.1:{state.ports['etcd-peer']}"
        return [
            "--name=default",
            f"--data-dir={self.directory / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync=true",
            "--auto-compaction-retention=1",
            "--quota-backend-bytes=2147483648",
            "--log-level=warn",
        ]

    def _apiserver_flags(self, state: ClusterState) -> list[str]:
        pki = state.pki
        return [
            f"--etcd-servers=http://127.0.0.1:{state.ports['etcd']}",
            "--etcd-prefix=/registry",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={state.ports['apiserver']}",
            "--endpoint-reconciler-type=none",
            f"--cert-dir={self.directory / 'apiserver'}",
            f"--tls-cert-file={pki.admin_cert}",
            f"--tls-private-key-file={pki.admin_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--profiling=false",
            "--enable-priority-and-fairness=false",
            # Logs, exec and port-forward dial a real node's kubelet at its InternalIP (its
            # hostname does not resolve), authenticated with the admin client certificate.
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={pki.admin_cert}",
            f"--kubelet-client-key={pki.admin_key}",
            "--max-requests-inflight=0",
            "--max-mutating-requests-inflight=0",
            "--v=1",
        ]

    def _kcm_flags(self, state: ClusterState) -> list[str]:
        pki = state.pki
        return [
            f"--kubeconfig={state.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={state.ports['controller-manager']}",
            f"--cert-dir={self.directory / 'controller-manager'}",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            f"--root-ca-file={pki.ca_cert}",
            f"--service-account-private-key-file={pki.sa_key}",
            "--use-service-account-credentials=false",
            "--node-monitor-period=1s",
            "--node-monitor-grace-period=40s",
            "--concurrent-gc-syncs=5",
            "--v=1",
        ]

    def _scheduler_flags(self, state: ClusterState) -> list[str]:
        return [
            f"--kubeconfig={state.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={state.ports['scheduler']}",
            f"--cert-dir={self.directory / 'scheduler'}",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            "--v=1",
        ]

    def _kwok_flags(self, state: ClusterState, bins: Path) -> list[str]:
        return [
            f"--kubeconfig={state.kubeconfig}",
            # Only the fake nodes: a real node's status and Pods belong to its kubelet.
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--config={bins / 'kwok-stages.yaml'}",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.0.0.1",
            "--node-lease-duration-seconds=40",
        ]


FAKE_NODE_TAINT = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}


def fake_node(name: str, *, tainted: bool = False) -> dict[str, Any]:
    """A kwok node; ``tainted`` keeps Pods that do not tolerate fakes on the real node."""
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "type": "kwok",
            },
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "status": {"capacity": resources, "allocatable": resources},
    }
    if tainted:
        node["spec"] = {"taints": [FAKE_NODE_TAINT]}
    return node


def _node_schedulable(node: dict[str, Any]) -> bool:
    found = (node.get("status") or {}).get("conditions") or []
    conditions = {c["type"]: c["status"] for c in found}
    taints = (node.get("spec") or {}).get("taints") or []
    return conditions.get("Ready") == "True" and not any(
        t.get("key") == "node.kubernetes.io/not-ready" for t in taints
    )


def _documents(directory: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield doc


def install_flux_crds(kube: KubeREST, directory: Path) -> None:
    """Apply Flux's CRDs and wait until every one is Established."""
    names = []
    for crd in _documents(directory):
        name = crd["metadata"]["name"]
        kube.apply(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}", crd)
        names.append(name)

    def established(name: str) -> bool:
        crd = kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        # A CRD just created may report `conditions: null` until the apiserver has looked at it.
        found = (crd.get("status") or {}).get("conditions") or []
        conditions = {c["type"]: c["status"] for c in found}
        return conditions.get("Established") == "True"

    deadline = time.monotonic() + COMPONENT_TIMEOUT
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        while True:
            if all(pool.map(established, names)):
                return
            if time.monotonic() > deadline:
                raise ComponentFailed("Flux CRDs did not become Established within 60s")
            time.sleep(0.1)
