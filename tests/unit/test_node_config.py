"""A real node's configuration files: the settings this machine needs, per-cluster isolation."""

from __future__ import annotations

import tomllib
from pathlib import Path

from fjord.devcluster import node
from fjord.devcluster.hostledger import Slot

LAYOUT = node.NodeLayout(Path("/state/clusters/ttd-tt02"), "ttd-tt02")


def test_containerd_keeps_everything_under_the_node_directory() -> None:
    config = tomllib.loads(
        node.containerd_config(LAYOUT, "fjord.local/pause:1", {"127.0.0.1:5001": ("ttd", "pw")})
    )
    assert config["root"].startswith(str(LAYOUT.root))
    assert config["state"].startswith(str(LAYOUT.root))
    assert config["grpc"]["address"] == str(LAYOUT.containerd_socket)
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True  # this machine lacks CAP_SYS_RESOURCE
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["sandbox_image"] == "fjord.local/pause:1"
    runc = cri["containerd"]["runtimes"]["runc"]["options"]
    assert runc["SystemdCgroup"] is False
    assert runc["Root"].startswith(str(LAYOUT.root))
    assert cri["registry"]["configs"]["127.0.0.1:5001"]["auth"] == {
        "username": "ttd",
        "password": "pw",
    }


def test_each_slot_has_its_own_bridge_and_subnet_without_masquerade() -> None:
    one, two = node.cni_config(LAYOUT, Slot(1)), node.cni_config(LAYOUT, Slot(2))
    bridge_one, bridge_two = one["plugins"][0], two["plugins"][0]
    assert bridge_one["bridge"] != bridge_two["bridge"]
    assert bridge_one["ipam"]["ranges"] != bridge_two["ipam"]["ranges"]
    assert bridge_one["ipMasq"] is False
    assert bridge_one["isGateway"] is False  # no IP forwarding switched on
    assert bridge_one["ipam"]["dataDir"].startswith(str(LAYOUT.root))


def test_kubelet_runs_on_cgroup_v1_with_its_own_root_and_dirs() -> None:
    config = node.kubelet_config(
        LAYOUT, Slot(3), port=10250, healthz_port=10248, ca_file=Path("/ca.crt")
    )
    assert config["failCgroupV1"] is False
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["cgroupRoot"] == "/fjord-ttd-tt02"
    assert config["address"] == Slot(3).gateway
    assert config["podLogsDir"].startswith(str(LAYOUT.root))
    assert config["evictionHard"]["nodefs.available"] == "1%"
    assert config["authentication"]["anonymous"]["enabled"] is False


def test_kube_proxy_leaves_conntrack_and_localhost_alone() -> None:
    config = node.kube_proxy_config(
        LAYOUT, Slot(1), kubeconfig=Path("/k"), healthz_port=1, metrics_port=2
    )
    assert config["mode"] == "iptables"
    assert config["conntrack"]["maxPerCore"] == 0
    assert config["iptables"]["localhostNodePorts"] is False
    assert config["clusterCIDR"] == Slot(1).subnet
