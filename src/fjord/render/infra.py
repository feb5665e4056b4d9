"""Per-app infrastructure resources generated from the spec, and how the pod consumes them.

The operators in the cluster turn a MaskinportenClient or AppCredentials into Secrets; the pod
mounts each Secret as a directory under ``/var/run/secrets/fjord/`` (mounting rather than
``envFrom`` keeps two databases' keys from colliding and lets the operator choose key names).
A pod does not start until its Secrets exist, which is the ordering we want.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fjord.render import names
from fjord.spec.app import AppSpec
from fjord.spec.infra import (
    AppCredentialsSpec,
    DatabaseCredentials,
    MaskinportenClientSpec,
    PostgreSQLCredentials,
    RedisCredentials,
    custom_resource,
)


@dataclass(frozen=True)
class SecretMount:
    volume: str
    secret: str
    path: str


def maskinporten_client(spec: AppSpec) -> MaskinportenClientSpec | None:
    if spec.maskinporten is None:
        return None
    return MaskinportenClientSpec(
        scopes=list(spec.maskinporten.scopes), secret_name=names.maskinporten_secret(spec)
    )


def app_credentials(spec: AppSpec) -> AppCredentialsSpec | None:
    if spec.postgresql is None and spec.redis is None:
        return None
    postgresql = None
    if spec.postgresql is not None:
        postgresql = PostgreSQLCredentials(
            databases=[
                DatabaseCredentials(name=d.name, secret_name=names.database_secret(spec, d.name))
                for d in spec.postgresql.databases
            ]
        )
    redis = None
    if spec.redis is not None:
        redis = RedisCredentials(
            key_prefix=names.redis_key_prefix(spec),
            commands=list(spec.redis.commands),
            secret_name=names.redis_secret(spec),
        )
    return AppCredentialsSpec(postgresql=postgresql, redis=redis)


def infra_objects(spec: AppSpec, environment: str) -> list[dict[str, Any]]:
    """The MaskinportenClient and AppCredentials the app needs (named after the app)."""
    labels = names.labels(spec)
    found: list[MaskinportenClientSpec | AppCredentialsSpec | None] = [
        app_credentials(spec),
        maskinporten_client(spec),
    ]
    return [
        custom_resource(resource, spec.app, spec.namespace, labels)
        for resource in found
        if resource is not None
    ]


def secret_mounts(spec: AppSpec) -> list[SecretMount]:
    root = names.SECRET_MOUNT_ROOT
    mounts = []
    if spec.maskinporten is not None:
        mounts.append(
            SecretMount("maskinporten", names.maskinporten_secret(spec), f"{root}/maskinporten")
        )
    if spec.postgresql is not None:
        for database in spec.postgresql.databases:
            mounts.append(
                SecretMount(
                    "pg-" + database.name.replace("_", "-"),
                    names.database_secret(spec, database.name),
                    f"{root}/postgresql/{database.name}",
                )
            )
    if spec.redis is not None:
        mounts.append(SecretMount("redis", names.redis_secret(spec), f"{root}/redis"))
    return mounts
