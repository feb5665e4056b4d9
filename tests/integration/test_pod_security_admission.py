"""The Namespace fjord's sync root creates makes the API server itself enforce Pod Security:
the platform chart's pods are admitted, a privileged pod is refused, an exception relaxes it.

The same rules run in fjord's pre-publish checks; this shows the cluster agrees with them.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fjord.control import ControlSettings
from fjord.control.syncroot import app_objects
from fjord.kube import Kube, KubeError
from fjord.render import render_spec
from fjord.spec import default_platform, parse_app_spec
from fjord.spec.platform import PodSecurityException, Security

pytestmark = pytest.mark.cluster

APP = "psa-check"
NS = f"ttd-{APP}"


def control_settings(tmp_path: Path, *exceptions: PodSecurityException) -> ControlSettings:
    platform = default_platform().model_copy(
        update={"security": Security(pod_security_exceptions=list(exceptions))}
    )
    return ControlSettings(data_dir=tmp_path, platform=platform)


def namespace_object(config: ControlSettings) -> dict[str, Any]:
    objects = app_objects(config, "ttd", APP, "tt02")
    return next(o for o in objects if o["kind"] == "Namespace")


def platform_pod() -> dict[str, Any]:
    """A Pod with exactly the pod template the platform chart renders for an app."""
    spec = parse_app_spec(f"org: ttd\napp: {APP}\nimage: ghcr.io/fjord-demo/skjema:1.3.0\n")
    manifest = render_spec(spec, environments=["tt02"]).manifest("tt02")
    deployment = next(d for d in yaml.safe_load_all(manifest) if d and d["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "compliant",
            "namespace": NS,
            "labels": template["metadata"]["labels"],
        },
        "spec": template["spec"],
    }


def privileged(pod: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(pod)
    changed["metadata"]["name"] = "privileged"
    changed["spec"]["containers"][0]["securityContext"]["privileged"] = True
    changed["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    return changed


@pytest.fixture
async def app_namespace(kube: Kube) -> AsyncIterator[None]:
    yield
    await kube.delete("v1", "Namespace", NS)
    await kube.wait_for("v1", "Namespace", NS, until=lambda o: o is None, timeout=120)


async def test_the_api_server_enforces_the_labels_fjord_sets(
    kube: Kube, app_namespace: None, tmp_path: Path
) -> None:
    await kube.apply(namespace_object(control_settings(tmp_path)))
    pod = platform_pod()
    await kube.create({**pod, "spec": {**pod["spec"], "serviceAccountName": "default"}})
    with pytest.raises(KubeError) as refused:
        await kube.create(
            {
                **privileged(pod),
                "spec": {**privileged(pod)["spec"], "serviceAccountName": "default"},
            }
        )
    assert refused.value.status == 403
    assert 'violates PodSecurity "restricted:v1.36"' in str(refused.value)
    assert "privileged" in str(refused.value)

    # The platform relaxes this one app (with a reason): the same pod is admitted.
    exception = PodSecurityException(
        org="ttd", app=APP, level="privileged", reason="node agent reviewed in SEC-12"
    )
    await kube.apply(namespace_object(control_settings(tmp_path, exception)), force=True)
    created = await kube.create(
        {**privileged(pod), "spec": {**privileged(pod)["spec"], "serviceAccountName": "default"}}
    )
    assert created["metadata"]["name"] == "privileged"
