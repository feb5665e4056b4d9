"""Which Secrets are in use, and by what (pure, unit-tested).

In use: referenced by a Pod (volumes, projected volumes, ``env[].valueFrom.secretKeyRef``,
``envFrom[].secretRef``, image pull secrets; init and ephemeral containers too), by the pod
template of a ReplicaSet, Deployment, StatefulSet, Job or CronJob (so ``kubectl rollout undo``
still finds the Secrets of an old ReplicaSet), or named by an AppCredentials' spec or status.

What to delete given these references is :mod:`fjord.operators.janitor.plan`'s decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _pod_spec_refs(spec: Mapping[str, Any]) -> set[str]:
    refs: set[str] = set()
    for volume in spec.get("volumes") or []:
        if (volume.get("secret") or {}).get("secretName"):
            refs.add(volume["secret"]["secretName"])
        for source in (volume.get("projected") or {}).get("sources") or []:
            if (source.get("secret") or {}).get("name"):
                refs.add(source["secret"]["name"])
    containers = [
        *(spec.get("containers") or []),
        *(spec.get("initContainers") or []),
        *(spec.get("ephemeralContainers") or []),
    ]
    for container in containers:
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef") or {}
            if ref.get("name"):
                refs.add(ref["name"])
        for source in container.get("envFrom") or []:
            if (source.get("secretRef") or {}).get("name"):
                refs.add(source["secretRef"]["name"])
    for pull in spec.get("imagePullSecrets") or []:
        if pull.get("name"):
            refs.add(pull["name"])
    return refs


def workload_refs(obj: Mapping[str, Any]) -> set[str]:
    """Secret names a Pod or a workload's pod template refers to."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return _pod_spec_refs(spec)
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return _pod_spec_refs(((spec.get("template") or {}).get("spec")) or {})


def app_credentials_refs(obj: Mapping[str, Any]) -> set[str]:
    """The Secrets an AppCredentials currently uses (its status), or will use (its spec).

    Only the current generation counts: an older one stays only while a workload uses it.
    """
    refs: set[str] = set()
    current = (obj.get("status") or {}).get("services") or []
    for service in current:
        refs.add(service.get("secretName", ""))
    if not current:  # not reconciled yet: the spec's names are the ones about to be used
        spec = obj.get("spec") or {}
        for db in (spec.get("postgresql") or {}).get("databases") or []:
            refs.add(db.get("secretName", ""))
        if spec.get("redis"):
            refs.add(spec["redis"].get("secretName", ""))
    refs.discard("")
    return refs


def used_secrets(users: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every Secret name the ``users`` (workloads and AppCredentials, one namespace) refer to."""
    used: set[str] = set()
    for obj in users:
        used |= (
            app_credentials_refs(obj) if obj.get("kind") == "AppCredentials" else workload_refs(obj)
        )
    return used
