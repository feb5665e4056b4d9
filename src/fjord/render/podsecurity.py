"""Pod Security and the other escape hatches, refused before anything is published.

App namespaces are labelled ``pod-security.kubernetes.io/enforce: restricted`` (see
``control.syncroot``), so the API server would refuse a non-compliant Pod anyway, but only once
a Deployment's ReplicaSet tries to create it, long after the release was published and tagged.
This module applies the same rules (the Pod Security Standards, Kubernetes v1.36) to every pod
template in a release, and names the object, the field path and the rule.

Besides Pod Security, objects an app may ship can still reach outside its namespace:

* Services of type NodePort or LoadBalancer, or with ``externalIPs`` (CVE-2020-8554), open
  ports on nodes or claim IPs: refused unless the platform allows them; ExternalName Services
  make an ingress controller proxy to any host: refused;
* ``kubernetes.io/service-account-token`` Secrets mint a token for any ServiceAccount in the
  namespace, including the deployer that Flux applies with (namespace admin): refused, and so is
  a workload that runs as that deployer;
* a pod with ``nodeName`` skips the scheduler (and any node isolation); a PersistentVolumeClaim
  with ``volumeName`` binds a specific, maybe another tenant's, PersistentVolume: refused;
* ingress-nginx ``*-snippet`` annotations inject configuration into the shared controller
  (CVE-2021-25742): refused; routes may only send traffic to Services in the app's namespace.

Cluster-scoped kinds, RBAC, webhooks and objects in another namespace are refused by
``checks`` already (allow-list of kinds, namespace check).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from fjord.spec.platform import PlatformConfig

Level = Literal["restricted", "baseline", "privileged"]
LEVELS: tuple[Level, ...] = ("privileged", "baseline", "restricted")
STANDARD_VERSION = "v1.36"  # the Pod Security Standards these checks implement

# The namespace labels Pod Security Admission reads.
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION_LABEL = "pod-security.kubernetes.io/enforce-version"
WARN_LABEL = "pod-security.kubernetes.io/warn"
WARN_VERSION_LABEL = "pod-security.kubernetes.io/warn-version"

DEPLOYER_SERVICE_ACCOUNT = "fjord-deployer"  # the account Flux applies an app with (control.flux)

_BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
_RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
_SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
_SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
_RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class Policy:
    """What one app's release may contain: its Pod Security level and the Service exposures."""

    level: Level = "restricted"
    allow_node_port: bool = False
    allow_load_balancer: bool = False
    allow_external_ips: bool = False


DEFAULT_POLICY = Policy()


def policy_for(platform: PlatformConfig, org: str, app: str) -> Policy:
    security = platform.security
    return Policy(
        level=security.pod_security_level(org, app),
        allow_node_port=security.allow_node_port_services,
        allow_load_balancer=security.allow_load_balancer_services,
        allow_external_ips=security.allow_external_ips,
    )


Failure = tuple[str, str]  # (field path, message)


def _rule(level: str, control: str, message: str) -> str:
    return f"{message} (Pod Security {level}: {control})"


def _pod_templates(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path of the template, the template) of every pod a workload creates."""
    kind, spec = obj.get("kind"), obj.get("spec")
    if not isinstance(spec, dict):
        return
    if kind in ("Deployment", "StatefulSet", "Job", "ReplicaSet", "DaemonSet"):
        template = spec.get("template")
        if isinstance(template, dict):
            yield "spec.template", template
    elif kind == "CronJob":
        job = spec.get("jobTemplate")
        job_spec = job.get("spec") if isinstance(job, dict) else None
        template = job_spec.get("template") if isinstance(job_spec, dict) else None
        if isinstance(template, dict):
            yield "spec.jobTemplate.spec.template", template
    elif kind == "Pod":
        yield "", obj


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix else path


def _containers(pod: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in _CONTAINER_LISTS:
        for index, container in enumerate(_list(pod.get(field))):
            if isinstance(container, dict):
                yield f"{field}[{index}]", container


def _baseline_context(where: str, context: dict[str, Any], container: bool) -> list[Failure]:
    """Baseline rules for one securityContext (pod or container)."""
    level = "baseline"
    failures: list[Failure] = []
    if _dict(context.get("windowsOptions")).get("hostProcess") is True:
        failures.append(
            (
                f"{where}.windowsOptions.hostProcess",
                _rule(level, "HostProcess", "Windows host processes are not allowed"),
            )
        )
    selinux = _dict(context.get("seLinuxOptions"))
    if str(selinux.get("type") or "") not in _SELINUX_TYPES:
        failures.append(
            (
                f"{where}.seLinuxOptions.type",
                _rule(level, "SELinux", f"type {selinux.get('type')!r} is not allowed"),
            )
        )
    for key in ("user", "role"):
        if selinux.get(key):
            failures.append(
                (f"{where}.seLinuxOptions.{key}", _rule(level, "SELinux", "must not be set"))
            )
    seccomp = _dict(context.get("seccompProfile")).get("type")
    if seccomp == "Unconfined":
        failures.append(
            (f"{where}.seccompProfile.type", _rule(level, "Seccomp", "Unconfined is not allowed"))
        )
    apparmor = _dict(context.get("appArmorProfile")).get("type")
    if apparmor is not None and apparmor not in ("RuntimeDefault", "Localhost"):
        failures.append(
            (
                f"{where}.appArmorProfile.type",
                _rule(level, "AppArmor", f"{apparmor!r} is not allowed"),
            )
        )
    if not container:
        for index, sysctl in enumerate(_list(context.get("sysctls"))):
            name = _dict(sysctl).get("name")
            if name not in _SAFE_SYSCTLS:
                failures.append(
                    (
                        f"{where}.sysctls[{index}].name",
                        _rule(level, "Sysctls", f"{name!r} is not a safe sysctl"),
                    )
                )
        return failures
    if context.get("privileged") is True:
        failures.append(
            (
                f"{where}.privileged",
                _rule(level, "Privileged Containers", "privileged containers are not allowed"),
            )
        )
    if context.get("procMount") not in (None, "Default"):
        failures.append(
            (f"{where}.procMount", _rule(level, "/proc Mount Type", "must be Default or unset"))
        )
    for index, capability in enumerate(_list(_dict(context.get("capabilities")).get("add"))):
        if capability not in _BASELINE_CAPABILITIES:
            failures.append(
                (
                    f"{where}.capabilities.add[{index}]",
                    _rule(level, "Capabilities", f"adding {capability!r} is not allowed"),
                )
            )
    return failures


def _restricted_container(
    where: str, context: dict[str, Any], pod_context: dict[str, Any]
) -> list[Failure]:
    level = "restricted"
    failures: list[Failure] = []
    if context.get("allowPrivilegeEscalation") is not False:
        failures.append(
            (
                f"{where}.allowPrivilegeEscalation",
                _rule(level, "Privilege Escalation", "must be set to false"),
            )
        )
    non_root = context.get("runAsNonRoot")
    if non_root is False or (non_root is None and pod_context.get("runAsNonRoot") is not True):
        failures.append(
            (
                f"{where}.runAsNonRoot",
                _rule(
                    level,
                    "Running as Non-root",
                    "must be true here or in the pod's securityContext",
                ),
            )
        )
    if context.get("runAsUser") == 0:
        failures.append(
            (f"{where}.runAsUser", _rule(level, "Running as Non-root user", "must not be 0"))
        )
    seccomp = _dict(context.get("seccompProfile")).get("type")
    pod_seccomp = _dict(pod_context.get("seccompProfile")).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost") and (
        seccomp is not None or pod_seccomp not in ("RuntimeDefault", "Localhost")
    ):
        failures.append(
            (
                f"{where}.seccompProfile.type",
                _rule(
                    level,
                    "Seccomp",
                    "must be RuntimeDefault or Localhost, here or in the pod's securityContext",
                ),
            )
        )
    capabilities = _dict(context.get("capabilities"))
    if "ALL" not in _list(capabilities.get("drop")):
        failures.append(
            (f"{where}.capabilities.drop", _rule(level, "Capabilities", "must include ALL"))
        )
    for index, capability in enumerate(_list(capabilities.get("add"))):
        if capability in _BASELINE_CAPABILITIES - _RESTRICTED_CAPABILITIES:
            failures.append(
                (
                    f"{where}.capabilities.add[{index}]",
                    _rule(
                        level,
                        "Capabilities",
                        f"only NET_BIND_SERVICE may be added, not {capability!r}",
                    ),
                )
            )
    return failures


def _pod_failures(prefix: str, template: dict[str, Any], level: Level) -> list[Failure]:
    """Pod Security failures of one pod template (or Pod) at ``level``."""
    failures: list[Failure] = []
    pod = _dict(template.get("spec"))
    spec_path = _join(prefix, "spec")
    metadata = _dict(template.get("metadata"))
    for key, value in sorted(_dict(metadata.get("annotations")).items()):
        if str(key).startswith(_APPARMOR_ANNOTATION) and not (
            value == "runtime/default" or str(value).startswith("localhost/")
        ):
            failures.append(
                (
                    _join(prefix, f"metadata.annotations[{key}]"),
                    _rule("baseline", "AppArmor", f"{value!r} is not allowed"),
                )
            )
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key) is True:
            failures.append(
                (
                    f"{spec_path}.{key}",
                    _rule(
                        "baseline",
                        "Host Namespaces",
                        "sharing the host's namespaces is not allowed",
                    ),
                )
            )
    for index, volume in enumerate(_list(pod.get("volumes"))):
        volume = _dict(volume)
        sources = sorted(k for k in volume if k != "name")
        where = f"{spec_path}.volumes[{index}]"
        if "hostPath" in sources:
            failures.append(
                (f"{where}.hostPath", _rule("baseline", "HostPath Volumes", "not allowed"))
            )
        elif level == "restricted":
            failures.extend(
                (
                    f"{where}.{source}",
                    _rule("restricted", "Volume Types", f"{source} volumes are not allowed"),
                )
                for source in sources
                if source not in _RESTRICTED_VOLUMES
            )
    pod_context = _dict(pod.get("securityContext"))
    failures += _baseline_context(f"{spec_path}.securityContext", pod_context, container=False)
    if level == "restricted" and pod_context.get("runAsUser") == 0:
        failures.append(
            (
                f"{spec_path}.securityContext.runAsUser",
                _rule("restricted", "Running as Non-root user", "must not be 0"),
            )
        )
    for where, container in _containers(pod):
        path = f"{spec_path}.{where}"
        for p_index, port in enumerate(_list(container.get("ports"))):
            if _dict(port).get("hostPort") not in (None, 0):
                failures.append(
                    (
                        f"{path}.ports[{p_index}].hostPort",
                        _rule("baseline", "Host Ports", "host ports are not allowed"),
                    )
                )
        context = _dict(container.get("securityContext"))
        failures += _baseline_context(f"{path}.securityContext", context, container=True)
        if level == "restricted":
            failures += _restricted_container(f"{path}.securityContext", context, pod_context)
    return failures


def _workload_failures(obj: dict[str, Any], policy: Policy) -> list[Failure]:
    failures: list[Failure] = []
    for prefix, template in _pod_templates(obj):
        pod = _dict(template.get("spec"))
        spec_path = _join(prefix, "spec")
        if pod.get("nodeName"):
            failures.append(
                (f"{spec_path}.nodeName", "pods are placed by the scheduler; use nodeSelector")
            )
        if pod.get("serviceAccountName") == DEPLOYER_SERVICE_ACCOUNT:
            failures.append(
                (
                    f"{spec_path}.serviceAccountName",
                    f"{DEPLOYER_SERVICE_ACCOUNT} is the account Flux deploys with (namespace"
                    " admin); give the workload its own ServiceAccount",
                )
            )
        if policy.level != "privileged":
            failures += _pod_failures(prefix, template, policy.level)
    return failures


def _service_failures(spec: dict[str, Any], policy: Policy) -> list[Failure]:
    failures: list[Failure] = []
    kind = spec.get("type", "ClusterIP")
    allowed = {"NodePort": policy.allow_node_port, "LoadBalancer": policy.allow_load_balancer}
    if kind == "ExternalName":
        failures.append(
            ("spec.type", "ExternalName Services are not allowed (ingress would proxy anywhere)")
        )
    elif kind in allowed and not allowed[kind]:
        failures.append(
            (
                "spec.type",
                f"{kind} Services are not allowed on this platform; use ClusterIP and a route",
            )
        )
    if spec.get("externalIPs") and not policy.allow_external_ips:
        failures.append(("spec.externalIPs", "external IPs are not allowed on this platform"))
    return failures


def _route_failures(obj: dict[str, Any], namespace: str) -> list[Failure]:
    failures: list[Failure] = []
    metadata = _dict(obj.get("metadata"))
    for key in sorted(_dict(metadata.get("annotations"))):
        if str(key).endswith("-snippet"):
            failures.append(
                (
                    f"metadata.annotations[{key}]",
                    "configuration snippets are not allowed (they run in the shared ingress"
                    " controller)",
                )
            )
    if obj.get("kind") == "IngressRoute":
        for r_index, route in enumerate(_list(_dict(obj.get("spec")).get("routes"))):
            route = _dict(route)
            for field in ("services", "middlewares"):
                for index, ref in enumerate(_list(route.get(field))):
                    other = _dict(ref).get("namespace")
                    if other not in (None, namespace):
                        failures.append(
                            (
                                f"spec.routes[{r_index}].{field}[{index}].namespace",
                                f"must be the app's namespace {namespace!r}",
                            )
                        )
    return failures


def policy_failures(obj: dict[str, Any], namespace: str, policy: Policy) -> list[Failure]:
    """Every Pod Security and escape-hatch failure of one object, as (field path, message)."""
    kind = obj.get("kind")
    spec = _dict(obj.get("spec"))
    if kind == "Service":
        return _service_failures(spec, policy)
    if kind == "Secret":
        if obj.get("type") == "kubernetes.io/service-account-token":
            return [
                (
                    "type",
                    "service-account-token Secrets are not allowed (they mint a token for any"
                    " ServiceAccount in the namespace)",
                )
            ]
        return []
    if kind == "PersistentVolumeClaim":
        failures = []
        if spec.get("volumeName"):
            failures.append(
                (
                    "spec.volumeName",
                    "binding a named PersistentVolume is not allowed; use a storageClassName",
                )
            )
        if _dict(spec.get("dataSourceRef")).get("namespace") not in (None, namespace):
            failures.append(("spec.dataSourceRef.namespace", "must be the app's namespace"))
        return failures
    if kind in ("Ingress", "IngressRoute", "Middleware", "HTTPRoute"):
        return _route_failures(obj, namespace)
    return _workload_failures(obj, policy)
