"""Pre-publish checks: nothing leaves fjord that a cluster would reject or should not accept.

* every object is valid against the OpenAPI schema of its kind in the platform's Kubernetes
  version (unknown fields are errors), fjord's own CRD schemas, or the embedded route schemas;
* only namespaced kinds from an allow-list, all in the app's namespace (tenant isolation: the
  app's deployer ServiceAccount could not apply anything else anyway, so fail early and clearly);
* no Secret carries ``data``/``stringData`` (secrets never travel in artifacts);
* object names are valid and unique; objects and the whole release stay within size bounds;
* Pod Security (the app's level, restricted by default) and the other escape hatches
  (``podsecurity``).

Identical objects (the same bytes in several environments) are validated once per call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fjord.render.errors import CheckFailure
from fjord.render.openapi import validator_for
from fjord.render.podsecurity import DEFAULT_POLICY, Policy, policy_failures
from fjord.render.yamlout import dump
from fjord.spec.platform import DEFAULT_KUBERNETES_VERSION

MAX_OBJECT_BYTES = 256 * 1024
MAX_RELEASE_BYTES = 4 * 1024 * 1024

ALLOWED_KINDS = frozenset(
    {
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "Service"),
        ("", "ServiceAccount"),
        ("", "PersistentVolumeClaim"),
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("batch", "Job"),
        ("batch", "CronJob"),
        ("autoscaling", "HorizontalPodAutoscaler"),
        ("policy", "PodDisruptionBudget"),
        ("networking.k8s.io", "NetworkPolicy"),
        ("networking.k8s.io", "Ingress"),
        ("gateway.networking.k8s.io", "HTTPRoute"),
        ("traefik.io", "IngressRoute"),
        ("traefik.io", "Middleware"),
        ("fjord.dev", "MaskinportenClient"),
        ("fjord.dev", "AppCredentials"),
    }
)
"""Namespaced kinds an app may ship. No RBAC, no cluster-scoped kinds, no Pods without owners."""

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class Item:
    """One object to check, and the file (and template) it will be published in."""

    file: str
    object: dict[str, Any]
    text: str | None = None  # its canonical YAML, if the caller already has it


def _describe(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    return f"{obj.get('kind', '?')}/{metadata.get('namespace', '-')}/{metadata.get('name', '?')}"


def _path(items: Iterable[Any]) -> str:
    text = ""
    for item in items:
        text += f"[{item}]" if isinstance(item, int) else (f".{item}" if text else str(item))
    return text


def _schema_failures(obj: dict[str, Any], kubernetes: str) -> list[tuple[str, str]]:
    validator = validator_for(kubernetes, str(obj["apiVersion"]), str(obj["kind"]))
    if validator is None:
        return [("", f"no schema known for {obj['apiVersion']} {obj['kind']}")]
    if validator.is_valid(obj):  # the common case, and much faster than collecting errors
        return []
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.instance_path)))
    return [(_path(error.instance_path), error.message) for error in errors]


def _object_failures(
    obj: dict[str, Any], text: str, namespace: str, kubernetes: str, policy: Policy
) -> list[tuple[str, str]]:
    """Failures of one object as (field path, message); independent of where it is published."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    metadata = obj.get("metadata")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return [("", "apiVersion and kind must be strings")]
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        return [("metadata.name", "required")]
    group = api_version.rpartition("/")[0]
    if (group, kind) not in ALLOWED_KINDS:
        return [("", f"kind {kind} ({api_version}) is not allowed in an app release")]
    failures: list[tuple[str, str]] = []
    name = metadata["name"]
    if len(name) > 253 or not _NAME.match(name):
        failures.append(("metadata.name", f"{name!r} is not a valid DNS-1123 name"))
    if metadata.get("namespace") != namespace:
        failures.append(("metadata.namespace", f"must be the app's namespace {namespace!r}"))
    if kind == "Secret" and group == "":
        for key in ("data", "stringData"):
            if obj.get(key):
                failures.append((key, "Secrets must not carry data; operators create them"))
    if len(text) > MAX_OBJECT_BYTES:
        failures.append(("", f"object is {len(text)} bytes, the limit is {MAX_OBJECT_BYTES}"))
    schema = _schema_failures(obj, kubernetes)
    # Policy rules read fields by name; on an object the schema refuses they could mislead.
    return failures + (schema or policy_failures(obj, namespace, policy))


def check_objects(
    items: Sequence[Item],
    namespace: str,
    kubernetes: str = DEFAULT_KUBERNETES_VERSION,
    policy: Policy = DEFAULT_POLICY,
) -> list[CheckFailure]:
    """Every reason not to publish ``items`` to clusters running ``kubernetes`` (e.g. "1.36")."""
    failures: list[CheckFailure] = []
    seen_results: dict[str, list[tuple[str, str]]] = {}
    seen_names: dict[tuple[str, str, str, str], str] = {}
    sizes: dict[str, int] = {}
    for item in items:
        obj = item.object
        text = item.text if item.text is not None else dump(obj)
        described = _describe(obj)
        result = seen_results.get(text)
        if result is None:
            result = _object_failures(obj, text, namespace, kubernetes, policy)
            seen_results[text] = result
        failures.extend(CheckFailure(item.file, described, p, m) for p, m in result)
        out_file = item.file.split(" ", 1)[0]
        key = (out_file, str(obj.get("apiVersion")), str(obj.get("kind")), described)
        if key in seen_names:
            failures.append(CheckFailure(item.file, described, "", "duplicate object"))
        seen_names[key] = item.file
        sizes[out_file] = sizes.get(out_file, 0) + len(text)
    for file, size in sorted(sizes.items()):
        if size > MAX_RELEASE_BYTES:
            failures.append(
                CheckFailure(file, "-", "", f"{size} bytes, the limit is {MAX_RELEASE_BYTES}")
            )
    return failures
