"""The sync root of an org in an environment: what its clusters should run, as an artifact.

Per app: the Namespace (labelled for Pod Security Admission), a deployer ServiceAccount bound
to the ``admin`` ClusterRole by a RoleBinding in that namespace only, the app's source
(following tag = environment, or ``{environment}.{cluster}`` where the environment rolls out in
waves: a cosign-verified OCIRepository, or a Bucket on the tag's tree for an Azure Blob store)
and its Kustomization (``./{env}`` or the tree's path, prune, wait, timeout, run as the
deployer).
Plus one Alert listing every app namespace, because Flux Alerts have no namespace wildcard.

Pure functions: the same app list always gives the same bytes, so an unchanged list republishes
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fjord.artifact.oci import Artifact, build_artifact
from fjord.control import flux
from fjord.control.settings import ControlSettings
from fjord.control.stores import flux_source, is_bucket
from fjord.releases import repository
from fjord.render import podsecurity
from fjord.render.yamlout import dump_all

Obj = dict[str, Any]


def _labels(org: str, app: str | None = None) -> dict[str, str]:
    labels = {flux.MANAGED_LABEL: "fjord", flux.ORG_LABEL: org}
    if app is not None:
        labels[flux.APP_LABEL] = app
    return labels


def namespace_labels(settings: ControlSettings, org: str, app: str) -> dict[str, str]:
    """fjord's labels plus Pod Security Admission's: the app's level enforced, and warnings at
    ``restricted`` even where an exception relaxes enforcement (so they stay visible)."""
    level = settings.platform.security.pod_security_level(org, app)
    version = podsecurity.STANDARD_VERSION
    return {
        **_labels(org, app),
        podsecurity.ENFORCE_LABEL: level,
        podsecurity.ENFORCE_VERSION_LABEL: version,
        podsecurity.WARN_LABEL: "restricted",
        podsecurity.WARN_VERSION_LABEL: version,
    }


def app_objects(settings: ControlSettings, org: str, app: str, environment: str) -> list[Obj]:
    ns = flux.app_namespace(org, app)
    source = flux_source(settings, org, repository(org, app))
    labels = _labels(org, app)
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "labels": namespace_labels(settings, org, app)},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": flux.DEPLOYER, "namespace": ns, "labels": labels},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": flux.DEPLOYER, "namespace": ns, "labels": labels},
            # A RoleBinding (not a ClusterRoleBinding): the admin role, in this namespace only.
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": flux.DEPLOYER, "namespace": ns}],
        },
        flux.source_object(
            source,
            name=flux.app_source_name(org, app),
            tag=flux.app_tag(environment, per_cluster=settings.rolls_out(environment)),
            interval=settings.flux_interval,
            labels=labels,
        ),
        {
            "apiVersion": flux.KUSTOMIZE_API,
            "kind": "Kustomization",
            "metadata": {"name": app, "namespace": ns, "labels": labels},
            "spec": {
                "sourceRef": {
                    "kind": flux.source_kind(source),
                    "name": flux.app_source_name(org, app),
                    "namespace": flux.FLUX_NAMESPACE,
                },
                "path": flux.kustomization_path(source, environment, environment),
                "prune": True,
                "wait": True,
                "timeout": settings.kustomization_timeout,
                "interval": settings.flux_interval,
                "serviceAccountName": flux.DEPLOYER,
            },
        },
    ]


def alert(org: str, apps: Sequence[str]) -> Obj:
    sources: list[Obj] = [
        {"kind": "Kustomization", "name": "*", "namespace": flux.app_namespace(org, app)}
        for app in apps
    ]
    # An Alert needs at least one source; the root objects are always there.
    sources.append({"kind": "Kustomization", "name": flux.SYNC_NAME})
    return {
        "apiVersion": flux.NOTIFICATION_API,
        "kind": "Alert",
        "metadata": {
            "name": "fjord-apps",
            "namespace": flux.FLUX_NAMESPACE,
            "labels": _labels(org),
        },
        "spec": {
            "providerRef": {"name": flux.PROVIDER_NAME},
            "eventSeverity": "info",
            "eventSources": sources,
        },
    }


def sync_root_files(
    settings: ControlSettings, org: str, environment: str, apps: Sequence[str]
) -> dict[str, bytes]:
    names = sorted(set(apps))
    files = {
        f"apps/{app}.yaml": dump_all(app_objects(settings, org, app, environment)) for app in names
    }
    files["alert.yaml"] = dump_all([alert(org, names)])
    return files


def sync_root_artifact(
    settings: ControlSettings, org: str, environment: str, apps: Sequence[str]
) -> Artifact:
    """The sync root as an artifact. For Bucket sources its files sit under ``current/``, the
    directory an Azure store writes as the tree of tag ``current``; OCI sources apply the
    artifact's root."""
    names = sorted(set(apps))
    files = sync_root_files(settings, org, environment, names)
    if is_bucket(settings, org):
        files = {f"{flux.SYNC_TAG}/{path}": content for path, content in files.items()}
    return build_artifact(
        files,
        source=f"fjord:{org}/{environment}",
        revision=f"apps:{','.join(names)}",
    )
