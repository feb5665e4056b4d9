"""Lifecycle of local clusters: side by side, crashes reported with logs, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fjord.devcluster import processes
from fjord.devcluster.cluster import ClusterState, LocalCluster
from fjord.devcluster.processes import ComponentFailed
from fjord.kube import Kube

pytestmark = pytest.mark.cluster


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def assert_gone(state: ClusterState) -> None:
    assert not any(processes.is_alive(p) for p in state.processes)
    assert not any(listening(port) for port in state.ports.values())
    assert not state.directory.exists()


async def test_two_clusters_run_side_by_side_and_are_isolated(
    tmp_path: Path, cluster: ClusterState
) -> None:
    second = LocalCluster(tmp_path / "second", "second")
    state = second.up(nodes=2)
    try:
        assert set(state.ports.values()).isdisjoint(cluster.ports.values())
        async with (
            await Kube.connect(state.kubeconfig) as other,
            await Kube.connect(cluster.kubeconfig) as first,
        ):
            nodes = {n["metadata"]["name"] for n in await other.items("v1", "Node")}
            assert nodes == {"second-node-0", "second-node-1"}
            await other.apply(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "only-in-second", "namespace": "default"},
                },
                field_manager="test",
            )
            assert await first.get("v1", "ConfigMap", "only-in-second", "default") is None
            assert await other.get("v1", "ConfigMap", "only-in-second", "default") is not None
    finally:
        second.down()
    assert_gone(state)


def test_down_after_a_component_crashed_cleans_up(tmp_path: Path) -> None:
    local = LocalCluster(tmp_path / "crashy", "crashy")
    state = local.up()
    scheduler = next(p for p in state.processes if p.name == "kube-scheduler")
    os.kill(scheduler.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while processes.is_alive(scheduler) and time.monotonic() < deadline:
        time.sleep(0.01)  # SIGKILL is delivered asynchronously
    status = local.status()
    assert status["components"]["kube-scheduler"] is False
    assert status["running"] is False

    # A fresh object (as in a new `fjord` process) finds everything through the state file.
    assert LocalCluster(tmp_path / "crashy").down() is True
    assert_gone(state)


def test_a_component_that_exits_fails_fast_with_its_log(
    tmp_path: Path, cluster_binaries: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "bin"
    broken.mkdir()
    for entry in cluster_binaries.iterdir():
        (broken / entry.name).symlink_to(entry)
    (broken / "kube-apiserver").unlink()
    (broken / "kube-apiserver").write_text(
        "#!/bin/sh\necho 'E1121 cannot open --tls-cert-file: simulated failure' >&2\nexit 1\n"
    )
    (broken / "kube-apiserver").chmod(0o755)
    monkeypatch.setenv("FJORD_BIN_DIR", str(broken))

    local = LocalCluster(tmp_path / "broken", "broken")
    with pytest.raises(ComponentFailed) as failed:
        local.up()
    message = str(failed.value)
    assert "kube-apiserver exited" in message
    assert "simulated failure" in message
    # etcd, started before the apiserver, was stopped and the state removed.
    assert not (tmp_path / "broken").exists()


def test_cli_up_status_down(tmp_path: Path, cluster_binaries: Path) -> None:
    fjord = [sys.executable, "-m", "fjord.cli"]
    state_dir = ["--state-dir", str(tmp_path)]
    up = subprocess.run(
        [*fjord, "dev", "cluster", "up", "--name", "cli", *state_dir],
        capture_output=True,
        text=True,
        check=True,
    )
    assert up.stdout.startswith("export KUBECONFIG=")
    kubeconfig = up.stdout.strip().split("=", 1)[1]
    try:
        nodes = subprocess.run(
            [str(cluster_binaries / "kubectl"), "--kubeconfig", kubeconfig, "get", "nodes"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "cli-node-0" in nodes.stdout
        assert " Ready " in nodes.stdout

        status = subprocess.run(
            [*fjord, "dev", "cluster", "status", "--name", "cli", "-o", "json", *state_dir],
            capture_output=True,
            text=True,
            check=True,
        )
        info = json.loads(status.stdout)
        assert info["ready"] is True
        assert set(info["components"]) == {
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
        }
    finally:
        down = subprocess.run(
            [*fjord, "dev", "cluster", "down", "--name", "cli", *state_dir],
            capture_output=True,
            text=True,
            check=False,
        )
    assert down.returncode == 0
    gone = subprocess.run(
        [*fjord, "dev", "cluster", "status", "--name", "cli", *state_dir],
        capture_output=True,
        text=True,
        check=False,
    )
    assert gone.returncode == 1
