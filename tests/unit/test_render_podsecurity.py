"""Pod Security (restricted by default) and the escape hatches, refused by the pre-publish
checks with the object, the field path and the rule; relaxed only by the platform config."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from fjord.render import CheckError, Item, check_objects, render_app, render_spec
from fjord.render.podsecurity import Policy
from fjord.spec import parse_app_spec, parse_platform

NS = "ttd-app1"
FILE = "tt02/app1.yaml"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

Obj = dict[str, Any]


def deployment() -> Obj:
    spec = parse_app_spec("org: ttd\napp: app1\nimage: x:1\n")
    release = render_spec(spec, environments=["tt02"])
    docs = list(yaml.safe_load_all(release.manifest("tt02")))
    return next(d for d in docs if d["kind"] == "Deployment")


def failures(obj: Obj, policy: Policy | None = None) -> list[str]:
    found = check_objects([Item(FILE, obj)], NS, policy=policy or Policy())
    return [f"{f.path}: {f.message}" for f in found]


def pod(obj: Obj) -> Obj:
    spec: Obj = obj["spec"]["template"]["spec"]
    return spec


def container(obj: Obj) -> Obj:
    first: Obj = pod(obj)["containers"][0]
    return first


C = "spec.template.spec.containers[0]"
P = "spec.template.spec"


def test_the_platform_chart_complies_with_restricted() -> None:
    assert failures(deployment()) == []


@pytest.mark.parametrize("example", ["platform-app", "app-with-chart"])
def test_the_examples_comply_with_restricted(example: str) -> None:
    render_app(EXAMPLES / example)  # raises CheckError otherwise


ESCAPES: list[tuple[str, Any, str]] = [
    # (what, change to a Deployment, the expected "path: message" prefix)
    (
        "privileged",
        lambda d: container(d)["securityContext"].update(privileged=True),
        f"{C}.securityContext.privileged: privileged containers are not allowed (Pod Security"
        " baseline: Privileged Containers)",
    ),
    (
        "host network",
        lambda d: pod(d).update(hostNetwork=True),
        f"{P}.hostNetwork: sharing the host's namespaces is not allowed (Pod Security baseline:"
        " Host Namespaces)",
    ),
    ("host PID", lambda d: pod(d).update(hostPID=True), f"{P}.hostPID: sharing"),
    ("host IPC", lambda d: pod(d).update(hostIPC=True), f"{P}.hostIPC: sharing"),
    (
        "hostPath",
        lambda d: pod(d).update(volumes=[{"name": "root", "hostPath": {"path": "/"}}]),
        f"{P}.volumes[0].hostPath: not allowed (Pod Security baseline: HostPath Volumes)",
    ),
    (
        "nfs volume",
        lambda d: pod(d).update(volumes=[{"name": "n", "nfs": {"server": "x", "path": "/"}}]),
        f"{P}.volumes[0].nfs: nfs volumes are not allowed (Pod Security restricted: Volume Types)",
    ),
    (
        "added capability",
        lambda d: container(d)["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
        f"{C}.securityContext.capabilities.add[0]: adding 'SYS_ADMIN' is not allowed",
    ),
    (
        "baseline capability",
        lambda d: container(d)["securityContext"]["capabilities"].update(add=["CHOWN"]),
        f"{C}.securityContext.capabilities.add[0]: only NET_BIND_SERVICE may be added",
    ),
    (
        "capabilities not dropped",
        lambda d: container(d)["securityContext"].pop("capabilities"),
        f"{C}.securityContext.capabilities.drop: must include ALL (Pod Security restricted:",
    ),
    (
        "privilege escalation",
        lambda d: container(d)["securityContext"].update(allowPrivilegeEscalation=True),
        f"{C}.securityContext.allowPrivilegeEscalation: must be set to false",
    ),
    (
        "root",
        lambda d: pod(d)["securityContext"].pop("runAsNonRoot"),
        f"{C}.securityContext.runAsNonRoot: must be true here or in the pod's securityContext",
    ),
    (
        "uid 0",
        lambda d: container(d)["securityContext"].update(runAsUser=0),
        f"{C}.securityContext.runAsUser: must not be 0",
    ),
    (
        "no seccomp",
        lambda d: pod(d)["securityContext"].pop("seccompProfile"),
        f"{C}.securityContext.seccompProfile.type: must be RuntimeDefault or Localhost",
    ),
    (
        "unconfined seccomp",
        lambda d: pod(d)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
        f"{P}.securityContext.seccompProfile.type: Unconfined is not allowed",
    ),
    (
        "host port",
        lambda d: container(d)["ports"][0].update(hostPort=80),
        f"{C}.ports[0].hostPort: host ports are not allowed",
    ),
    (
        "proc mount",
        lambda d: container(d)["securityContext"].update(procMount="Unmasked"),
        f"{C}.securityContext.procMount: must be Default or unset",
    ),
    (
        "unsafe sysctl",
        lambda d: pod(d)["securityContext"].update(
            sysctls=[{"name": "kernel.msgmax", "value": "1"}]
        ),
        f"{P}.securityContext.sysctls[0].name: 'kernel.msgmax' is not a safe sysctl",
    ),
    (
        "apparmor",
        lambda d: container(d)["securityContext"].update(appArmorProfile={"type": "Unconfined"}),
        f"{C}.securityContext.appArmorProfile.type: 'Unconfined' is not allowed",
    ),
    (
        "selinux",
        lambda d: pod(d)["securityContext"].update(seLinuxOptions={"type": "spc_t"}),
        f"{P}.securityContext.seLinuxOptions.type: type 'spc_t' is not allowed",
    ),
    (
        "init container",
        lambda d: pod(d).update(initContainers=[{"name": "i", "image": "x:1"}]),
        "spec.template.spec.initContainers[0].securityContext.allowPrivilegeEscalation:",
    ),
    (
        "node name",
        lambda d: pod(d).update(nodeName="control-plane"),
        f"{P}.nodeName: pods are placed by the scheduler",
    ),
    (
        "deployer service account",
        lambda d: pod(d).update(serviceAccountName="fjord-deployer"),
        f"{P}.serviceAccountName: fjord-deployer is the account Flux deploys with",
    ),
]


@pytest.mark.parametrize(("what", "change", "expected"), ESCAPES, ids=[e[0] for e in ESCAPES])
def test_each_escape_is_refused_with_its_path_and_rule(
    what: str, change: Any, expected: str
) -> None:
    obj = deployment()
    change(obj)
    found = failures(obj)
    assert any(f.startswith(expected) for f in found), (what, found)


def test_a_cronjobs_pod_template_is_checked_too() -> None:
    template = copy.deepcopy(deployment()["spec"]["template"])
    template["spec"]["hostNetwork"] = True
    template["spec"]["restartPolicy"] = "OnFailure"
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": NS},
        "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": template}}},
    }
    assert failures(cronjob) == [
        "spec.jobTemplate.spec.template.spec.hostNetwork: sharing the host's namespaces is not"
        " allowed (Pod Security baseline: Host Namespaces)"
    ]


def test_baseline_exception_allows_what_baseline_allows_only() -> None:
    obj = deployment()
    container(obj)["securityContext"] = {}
    pod(obj)["securityContext"] = {}
    assert failures(obj, Policy(level="baseline")) == []
    pod(obj)["hostNetwork"] = True
    assert len(failures(obj, Policy(level="baseline"))) == 1
    assert failures(obj, Policy(level="privileged")) == []


def service(**spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "svc", "namespace": NS},
        "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}], **spec},
    }


def test_service_exposure_is_refused_unless_the_platform_allows_it() -> None:
    assert failures(service(type="NodePort")) == [
        "spec.type: NodePort Services are not allowed on this platform; use ClusterIP and a route"
    ]
    assert failures(service(type="LoadBalancer"))[0].startswith("spec.type: LoadBalancer")
    assert failures(service(externalIPs=["10.0.0.1"])) == [
        "spec.externalIPs: external IPs are not allowed on this platform"
    ]
    assert failures(service(type="ExternalName", externalName="metadata.internal", ports=[]))
    allowing = Policy(allow_node_port=True, allow_load_balancer=True, allow_external_ips=True)
    assert failures(service(type="NodePort", externalIPs=["10.0.0.1"]), allowing) == []
    assert failures(service(type="LoadBalancer"), allowing) == []


def test_service_account_token_secrets_are_refused() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": "steal",
            "namespace": NS,
            "annotations": {"kubernetes.io/service-account.name": "fjord-deployer"},
        },
    }
    (found,) = failures(secret)
    assert found.startswith("type: service-account-token Secrets are not allowed")


def test_other_escape_hatches() -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": NS},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "volumeName": "pv-of-another-tenant",
        },
    }
    assert failures(claim)[0].startswith("spec.volumeName: binding a named PersistentVolume")
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "web",
            "namespace": NS,
            "annotations": {"nginx.ingress.kubernetes.io/server-snippet": "location / {}"},
        },
        "spec": {"rules": [{"host": "x.example"}]},
    }
    assert failures(ingress)[0].startswith(
        "metadata.annotations[nginx.ingress.kubernetes.io/server-snippet]: configuration snippets"
    )
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "me-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "x"},
    }
    assert failures(binding) == [
        ": kind ClusterRoleBinding (rbac.authorization.k8s.io/v1) is not allowed in an app release"
    ]


def test_a_chart_release_is_refused_before_publishing_naming_template_object_and_rule(
    tmp_path: Path,
) -> None:
    chart = tmp_path / "chart" / "templates"
    chart.mkdir(parents=True)
    (tmp_path / "chart" / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    (chart / "deploy.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec:
              selector: {matchLabels: {a: b}}
              template:
                metadata: {labels: {a: b}}
                spec:
                  containers:
                    - name: web
                      image: x:1
                      securityContext: {privileged: true}
            """
        )
    )
    (tmp_path / "fjord.yaml").write_text("org: ttd\napp: app1\nimage: x:1\nchart: {path: chart}\n")
    with pytest.raises(CheckError) as caught:
        render_app(tmp_path, environments=["tt02"])
    text = str(caught.value)
    assert "nothing was published" in text
    assert (
        "tt02/app1.yaml (from c/templates/deploy.yaml): Deployment/ttd-app1/web: "
        "spec.template.spec.containers[0].securityContext.privileged: privileged containers are"
        " not allowed (Pod Security baseline: Privileged Containers)"
    ) in text


def test_platform_config_relaxes_one_app_with_a_reason() -> None:
    platform_text = textwrap.dedent(
        """\
        domain: fjord.localhost
        environments: [{name: tt02}]
        orgs: {ttd: {}}
        security:
          podSecurityExceptions:
            - {org: ttd, app: app1, level: privileged, reason: "node agent, reviewed in SEC-12"}
        """
    )
    platform = parse_platform(platform_text)
    assert platform.security.pod_security_level("ttd", "app1") == "privileged"
    assert platform.security.pod_security_level("ttd", "other") == "restricted"
    with pytest.raises(Exception, match="reason"):
        parse_platform(platform_text.replace('"node agent, reviewed in SEC-12"', '"x"'))
    with pytest.raises(Exception, match="unknown org 'nope'"):
        parse_platform(platform_text.replace("org: ttd, app", "org: nope, app"))
