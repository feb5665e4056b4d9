"""Names and labels the platform gives an app's objects.

Namespace: ``{org}-{app}``. Each org has its own clusters, so two orgs whose names would collide
(``a-b``/``c`` vs ``a``/``b-c``) never share a cluster; within one org the name is unique.
"""

from __future__ import annotations

from fjord.spec.app import AppSpec

MANAGED_BY = "fjord"
ORG_LABEL = "fjord.dev/org"
APP_LABEL = "fjord.dev/app"

SECRET_MOUNT_ROOT = "/var/run/secrets/fjord"  # noqa: S105 (a directory, not a password)


def namespace(spec: AppSpec) -> str:
    return spec.namespace


def selector_labels(spec: AppSpec) -> dict[str, str]:
    """The Deployment's selector: immutable after creation, so it holds identity only."""
    return {"app.kubernetes.io/name": spec.app, ORG_LABEL: spec.org}


def labels(spec: AppSpec) -> dict[str, str]:
    # No environment label: identical objects in several environments stay byte-identical
    # (checked once), and the environment is already given by the cluster they run in.
    return {
        "app.kubernetes.io/name": spec.app,
        "app.kubernetes.io/part-of": spec.org,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        ORG_LABEL: spec.org,
        APP_LABEL: spec.app,
    }


def maskinporten_secret(spec: AppSpec) -> str:
    return f"{spec.app}-maskinporten"


def _rotation(spec: AppSpec) -> str:
    # A new name is what rotates: the credentials operator gives a new Secret name new
    # credentials, and the old Secret lives on while a ReplicaSet still mounts it.
    return f"-r{spec.credentials_rotation}" if spec.credentials_rotation else ""


def database_secret(spec: AppSpec, database: str) -> str:
    # Database names allow '_', Secret names do not; names never contain '-', so this is 1:1.
    return f"{spec.app}-pg-{database.replace('_', '-')}{_rotation(spec)}"


def redis_secret(spec: AppSpec) -> str:
    return f"{spec.app}-redis{_rotation(spec)}"


def redis_key_prefix(spec: AppSpec) -> str:
    return (spec.redis.key_prefix if spec.redis else None) or f"{spec.app}:"
