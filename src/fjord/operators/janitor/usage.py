"""Which Secrets are in use, and by what (pure, unit-tested).

In use: referenced by a Pod (volumes, projected volumes, ``env[].valueFrom.secretKeyRef``,
``envFrom[].secretRef``, image pull secrets; init and ephemeral containers too), by the pod
template of a ReplicaSet, Deployment, StatefulSet, Job or CronJob (so ``kubectl rollout undo``
still finds the Secrets of an old ReplicaSet), or named by an AppCredentials' status or by its
next reconcile's targets.

What to delete given these references is :mod:`fjord.operators.janitor.plan`'s decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from fjord.operators.credentials.plan import targets
from fjord.operators.credentials.request import requests
from fjord.spec.infra import AppCredentialsSpec


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
    """The Secrets an AppCredentials uses (its status) and will use (its next reconcile's targets).

    The targets count even before the status names them: a reconcile creates a new generation's
    Secret first and writes the status last, so a crash in between (or a slow reconcile) leaves a
    Secret that only the pending rotation or spec change names. Deleting it would race the
    reconcile that is about to report it Ready. Older generations stay only while a workload uses
    them.
    """
    refs = {str(s.get("secretName", "")) for s in (obj.get("status") or {}).get("services") or []}
    try:
        spec = AppCredentialsSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        spec = None  # stalled until fixed: its reconcile creates nothing meanwhile
    if spec is not None:
        refs |= {t.secret_name for t in targets(obj, requests(spec)).values()}
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
