"""A real node for a local cluster: containerd, the CNI bridge, kubelet and kube-proxy.

Everything the node writes lives under ``<cluster>/node/``: containerd's root, state and socket,
the CNI configuration and IP allocations, kubelet's root, certificates and Pod logs, and the
network namespaces of the Pods (containerd keeps them under its state directory). What the node
changes on the machine outside that directory is undone by :func:`teardown`:

* processes: kubelet, kube-proxy, containerd, its shims and every container (found by the
  node's own cgroup root, ``/fjord-<cluster>`` in every hierarchy);
* mounts under the node directory (container root filesystems, Pod volumes, network
  namespaces), the node's cgroups, its bridge and kubelet's log links in /var/log/containers;
* shared parts (the host address, kernel settings, kube-proxy's iptables chains), through
  :mod:`fjord.devcluster.hostledger`, by the last node on the machine.

Pod traffic stays on the machine: the bridge is not a gateway for the CNI plugin (no forwarding
is switched on, no masquerading); Pods reach the host's own addresses through it.

The settings come from ``../shared/reference/real-nodes.md``: containerd 1.6 with
``restrict_oom_score_adj`` (this machine lacks CAP_SYS_RESOURCE), runc, cgroupfs, kubelet with
``failCgroupV1: false`` and its node IP on the bridge.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fjord.devcluster import hostledger, images, processes
from fjord.devcluster.hostledger import Slot
from fjord.devcluster.processes import ProcessRecord
from fjord.errors import FjordError

CNI_BIN_DIR = Path("/usr/lib/cni")
CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
RUNC = "/usr/sbin/runc"
K8S_NAMESPACE = "k8s.io"
CONTAINER_LOGS = Path("/var/log/containers")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# kubelet and kube-proxy among a cluster's processes: stopped first, in this order, by teardown.
NODE_PROCESSES = ("kube-proxy", "kubelet", "containerd")

Progress = Callable[[str], None]


class NodeError(FjordError):
    pass


def required_programs() -> dict[str, Path]:
    """The Debian programs a real node runs, or an error naming the packages to install."""
    wanted = {
        "containerd": Path(CONTAINERD),
        "ctr": Path(CTR),
        "runc": Path(RUNC),
        "CNI bridge plugin": CNI_BIN_DIR / "bridge",
        "iptables": Path("/usr/sbin/iptables"),
    }
    missing = [name for name, path in wanted.items() if not path.exists()]
    if missing:
        raise NodeError(
            f"a real node needs {', '.join(missing)}, which are not installed",
            "run scripts/setup (it installs Debian's containerd, runc and "
            "containernetworking-plugins)",
        )
    return wanted


@dataclass(frozen=True)
class NodeLayout:
    """Where a node keeps everything, under its cluster's directory."""

    cluster_dir: Path
    cluster: str

    @property
    def root(self) -> Path:
        return self.cluster_dir / "node"

    @property
    def name(self) -> str:
        return f"{self.cluster}-real"

    @property
    def cgroup(self) -> str:
        return f"fjord-{self.cluster}"

    @property
    def short(self) -> Path:
        """A short link to ``root``: Unix socket paths (kubelet's, containerd's) must stay under
        108 bytes, and a state directory can be deep (a test's tmp path)."""
        digest = hashlib.sha256(str(self.cluster_dir).encode()).hexdigest()[:10]
        return hostledger.LEDGER / "n" / digest

    @property
    def containerd_socket(self) -> Path:
        return self.short / "containerd.sock"

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd-state"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def registry_hosts(self) -> Path:
        return self.root / "registry-hosts"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"


# ---- configuration files (pure) -----------------------------------------------------------


def containerd_config(
    layout: NodeLayout,
    sandbox_image: str,
    registry_auth: Mapping[str, tuple[str, str]] | None = None,
) -> str:
    """containerd 1.6's config: its own root, state and socket; runc under cgroupfs.

    ``registry_auth``: the node's pull credentials per registry host (the org's registry).
    """
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    runc = f"{cri}.containerd.runtimes.runc"
    lines = [
        "version = 2",
        f'root = "{layout.containerd_root}"',
        f'state = "{layout.containerd_state}"',
        "disabled_plugins = ["
        + ", ".join(
            f'"io.containerd.snapshotter.v1.{s}"'
            for s in ("btrfs", "zfs", "devmapper", "aufs", "native")
        )
        + ', "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]',
        "[grpc]",
        f'  address = "{layout.containerd_socket}"',
        "[ttrpc]",
        f'  address = "{layout.containerd_socket}.ttrpc"',
        "[metrics]",
        '  address = ""',
        '[plugins."io.containerd.internal.v1.opt"]',
        f'  path = "{layout.root / "opt"}"',
        f"[{cri}]",
        f'  sandbox_image = "{sandbox_image}"',
        # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which this machine's root lacks.
        "  restrict_oom_score_adj = true",
        "  disable_apparmor = true",
        "  enable_selinux = false",
        "  netns_mounts_under_state_dir = true",
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        "  enable_cdi = false",
        f"[{cri}.containerd]",
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        f"[{runc}]",
        '  runtime_type = "io.containerd.runc.v2"',
        f"[{runc}.options]",
        f'  BinaryName = "{RUNC}"',
        f'  Root = "{layout.root / "runc"}"',
        "  SystemdCgroup = false",
        f"[{cri}.cni]",
        f'  bin_dir = "{CNI_BIN_DIR}"',
        f'  conf_dir = "{layout.cni_conf_dir}"',
        "  max_conf_num = 1",
        f"[{cri}.registry]",
        f'  config_path = "{layout.registry_hosts}"',
    ]
    for host, (username, password) in sorted((registry_auth or {}).items()):
        lines += [
            f'[{cri}.registry.configs."{host}".auth]',
            f"  username = {json.dumps(username)}",
            f"  password = {json.dumps(password)}",
        ]
    return "\n".join(lines) + "\n"


def cni_config(layout: NodeLayout, slot: Slot) -> dict[str, Any]:
    """The bridge network: the node's own bridge and subnet, no gateway role, no masquerade."""
    return {
        "cniVersion": "1.0.0",
        "name": f"fjord-{layout.cluster}",
        "plugins": [
            {
                "type": "bridge",
                "bridge": slot.bridge,
                # The bridge already carries the gateway address (set up before kubelet, whose
                # node IP it is); as a CNI "gateway" the plugin would switch on IP forwarding.
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": slot.subnet, "gateway": slot.gateway}]],
                    "routes": [{"dst": "0.0.0.0/0", "gw": slot.gateway}],
                    "dataDir": str(layout.root / "cni" / "ipam"),
                },
            },
            {"type": "loopback"},
        ],
    }


def kubelet_config(
    layout: NodeLayout, slot: Slot, *, port: int, healthz_port: int, ca_file: Path
) -> dict[str, Any]:
    """kubelet's configuration: cgroup v1 on cgroupfs, everything under the node directory."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,  # this machine has cgroup v1 (hybrid); kubelet ≥ 1.35 asks
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{layout.cgroup}",  # own root: kubelets must not reap each other's Pods
        "cgroupsPerQOS": True,
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "address": slot.gateway,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "podLogsDir": str(layout.pod_logs),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "failSwapOn": False,
        "protectKernelDefaults": False,
        # A small, shared disk: never evict or collect images because of it.
        "evictionHard": {
            "memory.available": "50Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "registerNode": True,
        "maxPods": 110,
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "20s",
        "runtimeRequestTimeout": "2m",
        "shutdownGracePeriod": "0s",
        "resolvConf": "/etc/resolv.conf",
        "enableServer": True,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "localStorageCapacityIsolation": True,
        # No KUBE-FIREWALL/KUBE-KUBELET-CANARY chains: nothing here needs them, and every
        # iptables rule a node makes is one more thing to take back on `down`.
        "makeIPTablesUtilChains": False,
    }


def kube_proxy_config(
    layout: NodeLayout, slot: Slot, *, kubeconfig: Path, healthz_port: int, metrics_port: int
) -> dict[str, Any]:
    """kube-proxy in iptables mode, leaving conntrack and localhost settings alone."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": layout.name,
        "bindAddress": slot.gateway,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "clusterCIDR": slot.subnet,
        "nodePortAddresses": [f"{slot.gateway}/32"],
        "oomScoreAdj": 0,  # the default -999 needs CAP_SYS_RESOURCE
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False, "syncPeriod": "30s"},
    }


def registry_hosts_toml(host: str) -> str:
    """containerd's hosts.toml for a plain-HTTP registry on this machine."""
    server = f"http://{host}"
    return f'server = "{server}"\n\n[host."{server}"]\n  capabilities = ["pull", "resolve"]\n'


# ---- bring-up -----------------------------------------------------------------------------


@dataclass
class NodeStart:
    """What a cluster hands its node: where things are and how to record processes."""

    layout: NodeLayout
    node_bins: Path
    kubeconfig: Path
    ca_file: Path
    spawn: Callable[[str, list[str]], ProcessRecord]
    watch: list[ProcessRecord]
    say: Progress
    kube_proxy: bool = True
    registry_auth: dict[str, tuple[str, str]] = field(default_factory=dict)


def _link_short(layout: NodeLayout) -> None:
    layout.short.parent.mkdir(parents=True, exist_ok=True)
    if layout.short.is_symlink() or layout.short.exists():
        layout.short.unlink()
    layout.short.symlink_to(layout.root, target_is_directory=True)


def start(run: NodeStart) -> dict[str, Any]:
    """Start the node's parts in order; returns what the cluster's state records about it."""
    layout = run.layout
    required_programs()
    slot = hostledger.claim(layout.cluster_dir)
    info: dict[str, Any] = {"name": layout.name, "slot": slot.number, "address": slot.gateway}
    for directory in (layout.root, layout.cni_conf_dir, layout.registry_hosts, layout.pod_logs):
        directory.mkdir(parents=True, exist_ok=True)
    _link_short(layout)
    _make_cgroups(layout.cgroup)
    _make_bridge(slot)
    (layout.cni_conf_dir / "10-fjord.conflist").write_text(
        json.dumps(cni_config(layout, slot), indent=2)
    )

    run.say("starting containerd")
    sandbox_name, sandbox = images.pause_image()
    config = layout.root / "containerd.toml"
    config.write_text(containerd_config(layout, sandbox_name, run.registry_auth))
    config.chmod(0o600)  # it holds the pull credentials
    for host in run.registry_auth:
        trust_registry(layout, host)
    containerd = run.spawn("containerd", [CONTAINERD, "--config", str(config)])
    processes.wait_until(
        "containerd's socket",
        lambda: _ctr(layout, "version").returncode == 0,
        watch=[containerd],
        timeout=60,
    )
    import_image(layout, sandbox_name, sandbox)

    run.say("starting kubelet")
    port, healthz = processes.free_port(), processes.free_port()
    kubelet_yaml = layout.root / "kubelet.yaml"
    kubelet_yaml.write_text(
        yaml.safe_dump(
            kubelet_config(layout, slot, port=port, healthz_port=healthz, ca_file=run.ca_file)
        )
    )
    kubelet = run.spawn(
        "kubelet",
        [
            str(run.node_bins / "kubelet"),
            f"--config={kubelet_yaml}",
            f"--kubeconfig={run.kubeconfig}",
            f"--root-dir={layout.short / layout.kubelet_root.name}",
            f"--cert-dir={layout.root / 'kubelet-pki'}",
            f"--hostname-override={layout.name}",
            f"--node-ip={slot.gateway}",
            "--node-labels=fjord.dev/node=real",
            "--v=1",
        ],
    )
    info["kubelet_port"] = port
    if run.kube_proxy:
        run.say("starting kube-proxy")
        proxy_yaml = layout.root / "kube-proxy.yaml"
        proxy_yaml.write_text(
            yaml.safe_dump(
                kube_proxy_config(
                    layout,
                    slot,
                    kubeconfig=run.kubeconfig,
                    healthz_port=processes.free_port(),
                    metrics_port=processes.free_port(),
                )
            )
        )
        run.spawn("kube-proxy", [str(run.node_bins / "kube-proxy"), f"--config={proxy_yaml}"])
    run.watch += [containerd, kubelet]
    return info


def import_image(layout: NodeLayout, name: str, image: images.Image) -> None:
    """Make ``image`` available to the node's Pods as ``name`` without any registry."""
    archive = layout.root / "import.oci.tar"
    archive.write_bytes(images.oci_archive(image, name))
    try:
        imported = _ctr(layout, "-n", K8S_NAMESPACE, "images", "import", str(archive))
    finally:
        archive.unlink(missing_ok=True)
    if imported.returncode != 0:
        raise NodeError(f"importing {name} into containerd failed: {imported.stderr.strip()}")


# Registries the node's images may name; each is served by the org's registry on this machine
# instead (``_default``: any other, where containerd knows it), so no pull leaves the machine.
MIRRORED = ("ghcr.io", "docker.io", "registry.k8s.io", "quay.io", "_default")


def trust_registry(layout: NodeLayout, host: str) -> None:
    """Pull from the plain-HTTP registry at ``host`` (host:port) on this machine, for itself
    and in place of the public registries in ``MIRRORED`` (a pull-through mirror, as a
    production cluster without internet access would have)."""
    for name in {host, host.replace(":", "_"), *MIRRORED}:
        directory = layout.registry_hosts / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hosts.toml").write_text(registry_hosts_toml(host))


def _ctr(layout: NodeLayout, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CTR, "--address", str(layout.containerd_socket), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def _make_bridge(slot: Slot) -> None:
    if not hostledger.link_exists(slot.bridge):
        created = _ip("link", "add", slot.bridge, "type", "bridge")
        if created.returncode != 0:
            raise NodeError(f"creating the bridge {slot.bridge} failed: {created.stderr.strip()}")
    _ip("addr", "replace", f"{slot.gateway}/24", "dev", slot.bridge)
    _ip("link", "set", slot.bridge, "up")


def _hierarchies() -> list[Path]:
    """Every cgroup hierarchy mounted under /sys/fs/cgroup (v1 controllers and v2)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        if fields[separator + 1] in ("cgroup", "cgroup2"):
            mount = Path(fields[4])
            if mount.is_relative_to(CGROUP_ROOT):
                found.append(mount)
    return found


def _make_cgroups(name: str) -> None:
    for hierarchy in _hierarchies():
        group = hierarchy / name
        group.mkdir(exist_ok=True)
        for key in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset child starts empty
            mine, parent = group / key, hierarchy / key
            if mine.exists() and parent.exists() and not mine.read_text().strip():
                mine.write_text(parent.read_text())


# ---- teardown -----------------------------------------------------------------------------


def teardown(
    layout: NodeLayout, records: list[ProcessRecord], *, node_bins: Path | None = None
) -> None:
    """Stop the node and remove every trace of it from the machine (safe to run twice)."""
    by_name = {r.name: r for r in records}
    for name in ("kube-proxy", "kubelet"):
        if name in by_name:
            processes.stop(by_name[name])
    _kill_cgroup_processes(layout.cgroup)
    _kill_shims(layout)
    if "containerd" in by_name:
        processes.stop(by_name["containerd"])
    _kill_cgroup_processes(layout.cgroup)  # anything a dying shim started late
    _unmount_under(layout.root)
    _remove_cgroups(layout.cgroup)
    _remove_log_links(layout.pod_logs)
    if layout.short.is_symlink():
        layout.short.unlink()
    slot = hostledger.held_slot(layout.cluster_dir)
    if slot is not None and hostledger.link_exists(slot.bridge):
        _ip("link", "del", slot.bridge)
    if slot is not None:
        # kube-proxy's chains are shared by every node on the machine: only the last one
        # removes them (kube-proxy's own cleanup knows all of them).
        hostledger.release(layout.cluster_dir, last_out=lambda: _kube_proxy_cleanup(node_bins))


def _kube_proxy_cleanup(node_bins: Path | None) -> None:
    proxy = node_bins / "kube-proxy" if node_bins is not None else None
    if proxy is not None and proxy.exists():
        subprocess.run([str(proxy), "--cleanup"], capture_output=True, check=False, timeout=60)


def _cgroup_pids(name: str) -> set[int]:
    pids: set[int] = set()
    for hierarchy in _hierarchies():
        root = hierarchy / name
        if not root.is_dir():
            continue
        # os.walk skips directories that vanish while it walks: runc and kubelet remove a
        # container's cgroup as it exits, which made Path.rglob raise mid-teardown.
        for directory, _, files in os.walk(root):
            if "cgroup.procs" not in files:
                continue
            with contextlib.suppress(OSError, ValueError):
                text = (Path(directory) / "cgroup.procs").read_text()
                pids.update(int(p) for p in text.split())
    return pids


def _kill_cgroup_processes(name: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while pids := _cgroup_pids(name):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise NodeError(f"processes {sorted(pids)} in cgroup /{name} did not exit")
        time.sleep(0.1)


def _kill_shims(layout: NodeLayout) -> None:
    """containerd's shims of this node (they outlive containerd by design)."""
    marker = str(layout.containerd_socket).encode()
    shims = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes()
            if b"containerd-shim" in cmdline and marker in cmdline:
                shims.append(int(proc.name))
    for pid in shims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in shims) and time.monotonic() < deadline:
        for pid in shims:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)


def _mounts_under(root: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == str(root) or point.startswith(f"{root}/"):
            found.append(point)
    return found


def _unmount_under(root: Path) -> None:
    for _ in range(5):  # a mount can hide another at the same place
        mounts = _mounts_under(root)
        if not mounts:
            return
        for point in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    left = _mounts_under(root)
    if left:
        raise NodeError(f"could not unmount {left[:5]}")


def _remove_cgroups(name: str) -> None:
    for hierarchy in _hierarchies():
        root = hierarchy / name
        if not root.is_dir():
            continue
        # Deepest first (bottom-up walk); a group already gone is skipped, not an error.
        for directory, _, _ in os.walk(root, topdown=False):
            with contextlib.suppress(OSError):
                Path(directory).rmdir()


def _remove_log_links(pod_logs: Path) -> None:
    if not CONTAINER_LOGS.is_dir():
        return
    for link in CONTAINER_LOGS.iterdir():
        with contextlib.suppress(OSError):
            if link.is_symlink() and os.readlink(link).startswith(f"{pod_logs}/"):
                link.unlink()
