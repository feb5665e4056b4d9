"""Helpers of the end-to-end tests: the running platform and ways to reach its parts."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from fjord.api.client import FjordClient
from fjord.devcluster.cluster import ClusterState
from fjord.devcluster.gitea import LocalGitea
from fjord.devcluster.platform import PlatformState
from fjord.kube import Kube

REPO_ROOT = Path(__file__).resolve().parents[2]


def fjord_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fjord.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


@dataclass
class Platform:
    root: Path
    info: dict[str, Any]
    state: PlatformState

    @property
    def url(self) -> str:
        return str(self.info["control_url"])

    @property
    def token(self) -> str:
        return str(self.info["token"])

    @property
    def cli_env(self) -> dict[str, str]:
        return {"FJORD_SERVER": self.url, "FJORD_TOKEN": self.token}

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return fjord_cli(*args, env=self.cli_env)

    def push_app(self, repository: str, source: Path, *, tag: str | None = "v1.0.0") -> str:
        """Push ``source`` as a new private repository of the platform's Gitea; its clone URL.

        The org's read token (set by ``fjord dev up``) reads every repository of the org."""
        gitea = LocalGitea.load(self.root / "gitea")
        assert gitea is not None, "the platform's Gitea is not recorded"
        gitea.create_repo(repository)
        gitea.push_directory(repository, source, tag=tag)
        return gitea.clone_url(repository)

    def cluster(self, cluster_id: str) -> ClusterState:
        state = ClusterState.load(Path(self.state.clusters[cluster_id]))
        assert state is not None, cluster_id
        return state

    def kube(self, cluster_id: str) -> Any:
        """``async with platform.kube("ttd.tt02.tt02-1") as kube``."""
        return _KubeSession(self.cluster(cluster_id).kubeconfig)

    def api(self, token: str | None = None) -> FjordClient:
        """The one API client, as ``token`` (default: the platform's admin)."""
        return FjordClient.remote(self.url, token or self.token, timeout=60.0)

    async def wait(self, client: FjordClient, deployment_id: int) -> dict[str, Any]:
        """The deployment once settled (final or awaiting approval), as the API's JSON."""
        settled: dict[str, Any] = dumped(await client.wait_deployment(deployment_id))
        return settled


def dumped(model: BaseModel | None) -> Any:
    """A response model as the API's JSON (the tests compare plain data)."""
    return None if model is None else model.model_dump(mode="json")


async def status_of(client: FjordClient, app: str) -> dict[str, Any]:
    status: dict[str, Any] = (await client.app_status(app)).model_dump(mode="json")
    return status


class _KubeSession:
    def __init__(self, kubeconfig: Path) -> None:
        self._kubeconfig = kubeconfig
        self._kube: Kube | None = None

    async def __aenter__(self) -> Kube:
        self._kube = await Kube.connect(self._kubeconfig)
        return self._kube

    async def __aexit__(self, *exc: object) -> None:
        if self._kube is not None:
            await self._kube.close()
