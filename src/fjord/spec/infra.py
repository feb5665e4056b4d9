"""Per-app infrastructure custom resources (group ``fjord.dev``, version ``v1alpha1``).

These models are the single definition of the CRs: the renderer builds them from the app spec,
the CRD manifests in ``deploy/crds/`` are generated from them (``fjord.spec.crd``), and the
operators validate what they read from the cluster with them.
"""

# ruff: noqa: S105  (the reason constants below name Secrets; none of them is a password)

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import ConfigDict, Field

from fjord.spec.app import DATABASE_NAME, DEFAULT_REDIS_COMMANDS, REDIS_COMMAND, SCOPE
from fjord.spec.base import SpecModel

GROUP = "fjord.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# -- conditions ----------------------------------------------------------------------------------
# Every infra resource reports the same condition types (kstatus): Ready, and Reconciling, Stalled
# or Degraded while something is abnormal (reason AS_EXPECTED when it is not).

READY: Final = "Ready"
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"
DEGRADED: Final = "Degraded"
AS_EXPECTED: Final = "AsExpected"

SecretName = Annotated[
    str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", min_length=1, max_length=253)
]


class MaskinportenClientSpec(SpecModel):
    """A Maskinporten client for one app; the operator writes its key and id into the Secret."""

    kind: ClassVar[str] = "MaskinportenClient"
    plural: ClassVar[str] = "maskinportenclients"

    scopes: list[Annotated[str, Field(pattern=SCOPE, max_length=255)]] = Field(min_length=1)
    secret_name: SecretName


class MaskinportenClientReason:
    """Reasons on a ``MaskinportenClient``'s conditions (Ready's Reason column) and Warnings."""

    SYNCED: Final = "Synced"
    DELETING: Final = "Deleting"
    SECRET_OWNED_ELSEWHERE: Final = "SecretOwnedElsewhere"  # stalled: pick another secretName
    DIGDIR_REJECTED: Final = "DigdirRejected"  # stalled: Digdir's 400 (e.g. a scope not granted)
    SUPPLIER_NOT_AUTHORIZED: Final = "SupplierNotAuthorized"  # stalled: Digdir's 401/403
    DIGDIR_UNAVAILABLE: Final = "DigdirUnavailable"  # transient: 5xx, 429, connection
    DIGDIR_ERROR: Final = "DigdirError"  # transient: any other Digdir failure
    KUBERNETES_ERROR: Final = "KubernetesError"
    ERROR: Final = "Error"
    INTERNAL_ERROR: Final = "InternalError"


class MaskinportenClientEventReason:
    """Reasons of the Normal Events about a ``MaskinportenClient``: what changed, past tense."""

    CLIENT_CREATED: Final = "ClientCreated"
    CLIENT_UPDATED: Final = "ClientUpdated"
    CLIENT_DELETED: Final = "ClientDeleted"
    KEY_GENERATED: Final = "KeyGenerated"
    KEYS_REGISTERED: Final = "KeysRegistered"
    SECRET_WRITTEN: Final = "SecretWritten"
    SECRET_DELETED: Final = "SecretDeleted"
    SECRET_CLEARED: Final = "SecretCleared"


class DatabaseCredentials(SpecModel):
    name: str = Field(pattern=DATABASE_NAME)
    secret_name: SecretName


class PostgreSQLCredentials(SpecModel):
    databases: list[DatabaseCredentials] = Field(min_length=1)
    deletion_policy: Literal["Retain", "Delete"] | None = Field(
        default=None,
        description=(
            "what happens to each database and its owner role when the app's last credentials "
            "are cleaned up: Retain (the default when unset) keeps them, so a re-created app or "
            "a rollback finds its data; Delete drops them"
        ),
    )


class RedisCredentials(SpecModel):
    key_prefix: str = Field(pattern=r"^[A-Za-z0-9:._-]+$", max_length=128)
    commands: list[Annotated[str, Field(pattern=REDIS_COMMAND)]] = Field(
        default_factory=lambda: list(DEFAULT_REDIS_COMMANDS), min_length=1
    )
    secret_name: SecretName


class AppCredentialsSpec(SpecModel):
    """Backing-service credentials for one app (a user per database, an ACL user for Redis)."""

    kind: ClassVar[str] = "AppCredentials"
    plural: ClassVar[str] = "appcredentials"

    postgresql: PostgreSQLCredentials | None = None
    redis: RedisCredentials | None = None
    protected: bool = Field(default=False, description="the janitor never deletes these Secrets")
    expires_at: datetime | None = Field(
        default=None, description="the resource deletes itself after"
    )


class AppCredentialsReason:
    """Reasons on an ``AppCredentials``' conditions (Ready's Reason column) and Warnings."""

    SYNCHRONIZED: Final = "Synchronized"
    INVALID_SPEC: Final = "InvalidSpec"
    SECRET_NAME_TAKEN: Final = "SecretNameTaken"  # stalled: a foreign Secret has the name
    SECRET_CONFLICT: Final = "SecretConflict"  # transient: the Secret appeared concurrently
    SECRET_BEING_DELETED: Final = "SecretBeingDeleted"  # not Ready until it is recreated
    KUBERNETES_UNAVAILABLE: Final = "KubernetesUnavailable"
    KUBERNETES_REJECTED: Final = "KubernetesRejected"
    ADMIN_SECRET_NOT_CONFIGURED: Final = "AdminSecretNotConfigured"
    ADMIN_SECRET_UNREADABLE: Final = "AdminSecretUnreadable"
    ADMIN_SECRET_MISSING: Final = "AdminSecretMissing"
    POSTGRESQL_NOT_CONFIGURED: Final = "PostgreSQLNotConfigured"
    POSTGRESQL_TIMEOUT: Final = "PostgreSQLTimeout"
    POSTGRESQL_PRIVILEGES: Final = "PostgreSQLPrivileges"
    POSTGRESQL_UNAVAILABLE: Final = "PostgreSQLUnavailable"
    POSTGRESQL_ERROR: Final = "PostgreSQLError"
    REDIS_NOT_CONFIGURED: Final = "RedisNotConfigured"
    REDIS_TIMEOUT: Final = "RedisTimeout"
    REDIS_PRIVILEGES: Final = "RedisPrivileges"
    REDIS_UNAVAILABLE: Final = "RedisUnavailable"
    REDIS_REJECTED: Final = "RedisRejected"
    FINALIZER_CONFLICT: Final = "Conflict"  # a managed Secret's finalizers changed meanwhile


class AppCredentialsEventReason:
    """Reasons of the Normal Events about an ``AppCredentials``."""

    SECRET_CREATED: Final = "SecretCreated"
    READY: Final = "Ready"
    EXPIRED: Final = "Expired"


class ServiceState:
    """``status.services[].state`` of an ``AppCredentials``."""

    READY: Final = "Ready"
    DEGRADED: Final = "Degraded"
    STALLED: Final = "Stalled"


class Condition(SpecModel):
    type: str
    status: str = Field(pattern=r"^(True|False|Unknown)$")
    reason: str | None = None
    message: str | None = None
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


class InfraStatus(SpecModel):
    """Status both operators report; further fields (kopf's bookkeeping) are preserved."""

    observed_generation: int | None = None
    synchronization_hash: str | None = None
    synchronization_time: datetime | None = None
    conditions: list[Condition] = Field(default_factory=list)


class MaskinportenAction(SpecModel):
    """One command the Maskinporten operator ran (newest first, bounded history)."""

    action: str
    result: str = Field(pattern=r"^(ok|failed|skipped)$")
    detail: str | None = None
    time: datetime


class MaskinportenClientStatus(InfraStatus):
    """What the Maskinporten operator reports on a ``MaskinportenClient``."""

    model_config = ConfigDict(extra="ignore")  # kopf keeps its own bookkeeping in status

    client_id: str | None = None
    authority: str | None = Field(default=None, description="the issuer; ends with '/'")
    key_ids: list[str] = Field(default_factory=list, description="registered kids, active first")
    next_rotation: datetime | None = None
    rotation_request: str | None = Field(
        default=None, description="the last fjord.dev/rotate annotation value acted on"
    )
    secret_name: str | None = Field(default=None, description="the Secret last written")
    last_actions: list[MaskinportenAction] = Field(default_factory=list, max_length=10)


class ServiceStatus(SpecModel):
    """One Secret the credentials operator maintains for an AppCredentials."""

    key: str = Field(description="the service: postgresql/<database> or redis")
    kind: str = Field(pattern=r"^(postgresql|redis)$")
    base_secret_name: str = Field(description="spec's secretName (generation 1's Secret name)")
    secret_name: str = Field(description="the current Secret; mount this one")
    generation: int = Field(ge=1, description="credential generation; +1 on every rotation")
    state: str | None = Field(
        default=None,
        pattern=r"^(Ready|Degraded|Stalled)$",
        description="Ready, or how its last reconcile failed",
    )


class AppCredentialsStatus(InfraStatus):
    """What the credentials operator reports on an ``AppCredentials``."""

    model_config = ConfigDict(extra="ignore")

    services: list[ServiceStatus] = Field(default_factory=list)
    rotation: str | None = Field(
        default=None, description="the last fjord.dev/rotate annotation value acted on"
    )


def custom_resource(
    spec: MaskinportenClientSpec | AppCredentialsSpec,
    name: str,
    namespace: str,
    labels: dict[str, str],
) -> dict[str, Any]:
    """The manifest of one infra custom resource."""
    return {
        "apiVersion": API_VERSION,
        "kind": spec.kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
