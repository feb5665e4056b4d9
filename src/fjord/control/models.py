"""The control plane's tables (SQLAlchemy 2 declarative); migrations in ``migrations/``.

Times are stored as naive UTC and read back timezone-aware, so SQLite (no time zones) and
PostgreSQL behave the same. Releases are immutable: nothing updates a ``releases`` row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use timezone-aware UTC")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UtcDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Org(Base):
    __tablename__ = "orgs"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)


class Environment(Base):
    __tablename__ = "environments"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    position: Mapped[int] = mapped_column(Integer)  # promotion order, 0 first


class Cluster(Base):
    __tablename__ = "clusters"
    # ``{org}.{env}.{name}``: DNS labels hold no dots, so the id is unambiguous and URL-safe.
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"))
    name: Mapped[str] = mapped_column(String(63))
    # The Flux Receiver's base URL (e.g. http://127.0.0.1:9292); None: wait for the interval.
    receiver_url: Mapped[str | None] = mapped_column(String(500), default=None)
    # The per-cluster HMAC token, encrypted at rest (see secrets.py); None until bootstrapped.
    token_cipher: Mapped[str | None] = mapped_column(Text, default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # False: gone from the platform
    sync_revision: Mapped[str | None] = mapped_column(String(200), default=None)
    sync_ready: Mapped[bool | None] = mapped_column(Boolean, default=None)
    sync_message: Mapped[str | None] = mapped_column(Text, default=None)
    sync_event_at: Mapped[dt.datetime | None] = mapped_column(default=None)  # see ClusterApp
    __table_args__ = (UniqueConstraint("org_id", "environment_id", "name"),)


class App(Base):
    __tablename__ = "apps"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"))
    name: Mapped[str] = mapped_column(String(63))
    # The clone URL of the app's Git repository (http(s), no credentials in it).
    source: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Pushed tags matching this glob build a release (webhook); None: tags build nothing.
    tag_pattern: Mapped[str | None] = mapped_column(String(200), default="v*")
    # Optional rule: a push to ``deploy_branch`` deploys its head to ``deploy_environment``.
    deploy_branch: Mapped[str | None] = mapped_column(String(200), default=None)
    deploy_environment: Mapped[str | None] = mapped_column(String(63), default=None)
    # The webhook's HMAC secret (encrypted at rest) and its id in Gitea; None: no webhook.
    webhook_secret_cipher: Mapped[str | None] = mapped_column(Text, default=None)
    webhook_id: Mapped[int | None] = mapped_column(Integer, default=None)
    __table_args__ = (UniqueConstraint("org_id", "name"),)


class OrgCredential(Base):
    """An org's read credential for its Git repositories (a Gitea token), encrypted at rest."""

    __tablename__ = "org_credentials"
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"), primary_key=True)
    token_cipher: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """Every webhook delivery accepted, by Gitea's delivery id: a replay is refused."""

    __tablename__ = "webhook_deliveries"
    delivery: Mapped[str] = mapped_column(String(100), primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"))
    event: Mapped[str] = mapped_column(String(40))
    ref: Mapped[str | None] = mapped_column(String(300), default=None)
    outcome: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CommitStatus(Base):
    """The last commit status fjord posted to Gitea for a deployment (pending/success/failure)."""

    __tablename__ = "commit_statuses"
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ConfigVersion(Base):
    __tablename__ = "config_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"))
    version: Mapped[int] = mapped_column(Integer)
    values: Mapped[dict[str, Any]] = mapped_column()
    author: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("app_id", "version"),)


class Release(Base):
    __tablename__ = "releases"
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"))
    digest: Mapped[str] = mapped_column(String(80))
    source: Mapped[str] = mapped_column(String(1000))
    revision: Mapped[str] = mapped_column(String(200))
    # Where it came from: the ref asked for (tag, branch or commit), the commit it pinned to and
    # the image it runs. None for releases built before apps were registered by repository.
    ref: Mapped[str | None] = mapped_column(String(300), default=None)
    commit: Mapped[str | None] = mapped_column(String(64), default=None)
    image: Mapped[str | None] = mapped_column(String(512), default=None)
    config_version: Mapped[int] = mapped_column(Integer)
    builder: Mapped[str] = mapped_column(String(100))
    environments: Mapped[list[Any]] = mapped_column()
    # The rendered files (path → text) and the config values, kept for diffs between releases.
    # Deferred: history and status never need them, and they are the bulk of a row.
    files: Mapped[dict[str, Any]] = mapped_column(deferred=True)
    config: Mapped[dict[str, Any]] = mapped_column(deferred=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("app_id", "digest"),)


class Deployment(Base):
    __tablename__ = "deployments"
    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"))
    # None only for a ``build`` (a release built from a pushed tag, into no environment).
    environment_id: Mapped[int | None] = mapped_column(ForeignKey("environments.id"))
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"), default=None)
    kind: Mapped[str] = mapped_column(String(20))  # deploy|promote|rollback|undeploy|rotate|build
    state: Mapped[str] = mapped_column(String(20))  # see states.py
    step: Mapped[str | None] = mapped_column(String(40), default=None)  # the one running now
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    requested_by: Mapped[str] = mapped_column(String(200))
    # The requester's identity (``provider#subject``): four eyes compares it, not the name.
    requested_by_identity: Mapped[str | None] = mapped_column(String(400), default=None)
    approved_by: Mapped[str | None] = mapped_column(String(200), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    # The replica whose worker holds the claim, until ``lease_expires`` (renewed by heartbeat).
    owner: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_expires: Mapped[dt.datetime | None] = mapped_column(default=None)
    # Inputs pinned when the request was accepted (deploy, rotate): the dynamic-config version
    # (None: the app has none) and the source revision the release must be built from.
    config_version: Mapped[int | None] = mapped_column(Integer, default=None)
    source_revision: Mapped[str | None] = mapped_column(String(200), default=None)
    # With it: the ref that was asked for, the version ``{version}`` in the image takes (from the
    # tag), and an image CI named; all fixed at request time, like the commit.
    source_ref: Mapped[str | None] = mapped_column(String(300), default=None)
    source_version: Mapped[str | None] = mapped_column(String(200), default=None)
    image: Mapped[str | None] = mapped_column(String(512), default=None)
    sync_digest: Mapped[str | None] = mapped_column(String(80), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    deadline: Mapped[dt.datetime | None] = mapped_column(default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # A ``rolling_out`` deployment is claimed again only from this time on (the next health
    # check or the end of a soak): a scheduled time in the database, never a sleeping process.
    not_before: Mapped[dt.datetime | None] = mapped_column(default=None)
    # A platform-admin let it through outside the environment's delivery windows (audited).
    window_override_by: Mapped[str | None] = mapped_column(String(200), default=None)
    __table_args__ = (
        UniqueConstraint("app_id", "idempotency_key"),
        Index("ix_deployments_app_env_id", "app_id", "environment_id", "id"),
        Index("ix_deployments_state", "state"),
    )


class DeploymentStep(Base):
    """One declared step of a deployment's pipeline, as run: by which replica, when, how often.

    ``finished_at`` set means done for good: a worker that takes the deployment over starts at
    the first step without it.
    """

    __tablename__ = "deployment_steps"
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    replica: Mapped[str] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class Rollout(Base):
    """A deployment's waves through an environment's clusters, pinned when it is first claimed
    (a later platform-config change does not reshuffle a rollout under way)."""

    __tablename__ = "rollouts"
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))  # see waves.py
    wave: Mapped[int] = mapped_column(Integer, default=1)  # the one in progress, 1-based
    failure_budget: Mapped[int] = mapped_column(Integer, default=0)
    rollback_on_failure: Mapped[bool] = mapped_column(Boolean, default=False)
    # Clusters whose failure used the budget, and what each cluster's tag pointed at before
    # this rollout moved it ({cluster id: digest or None}): where a roll back returns it.
    failed: Mapped[list[Any]] = mapped_column(default=list)
    previous: Mapped[dict[str, Any]] = mapped_column(default=dict)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RolloutWave(Base):
    __tablename__ = "rollout_waves"
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1-based
    clusters: Mapped[list[Any]] = mapped_column()  # cluster ids
    soak_seconds: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    ready_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class NotificationEvent(Base):
    """Something people may want to hear of (the outbox): written in the transaction that made it
    happen, fanned out to the hooks that match by a sender in any replica."""

    __tablename__ = "notification_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"))
    event_type: Mapped[str] = mapped_column(String(100))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    fanned_out: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class NotificationHook(Base):
    """An outbound webhook of an org (``app`` None) or one app: where events go, how they are
    formatted and signed, and whether it still gets them (disabled after repeated failures)."""

    __tablename__ = "notification_hooks"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"))
    app_id: Mapped[int | None] = mapped_column(ForeignKey("apps.id"), default=None)
    url: Mapped[str] = mapped_column(String(500))
    format: Mapped[str] = mapped_column(String(20))  # cloudevents | slack
    secret_cipher: Mapped[str] = mapped_column(Text)  # the HMAC key, encrypted at rest
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # failed deliveries in a row
    disabled_reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class NotificationDelivery(Base):
    """One event for one hook: queued in the transaction that made the event, sent in order per
    hook by any replica, retried with backoff; the delivery log."""

    __tablename__ = "notification_deliveries"
    id: Mapped[int] = mapped_column(primary_key=True)
    hook_id: Mapped[int] = mapped_column(ForeignKey("notification_hooks.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column()
    state: Mapped[str] = mapped_column(String(20))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    owner: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_expires: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class Placement(Base):
    """An app listed in its org's sync root for an environment."""

    __tablename__ = "placements"
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"), primary_key=True)


class SyncRoot(Base):
    __tablename__ = "sync_roots"
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"), primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(80))
    apps: Mapped[list[Any]] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ClusterApp(Base):
    """What Flux last reported for an app in a cluster: the truth about what runs there."""

    __tablename__ = "cluster_apps"
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id"), primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id"), primary_key=True)
    # The last revision Flux applied successfully here (what runs) …
    applied_revision: Mapped[str | None] = mapped_column(String(200), default=None)
    applied_digest: Mapped[str | None] = mapped_column(String(80), default=None)
    # … and the latest event: its revision (None if it carried none) and outcome
    # (True: applied and healthy, False: failed, None: in progress).
    revision: Mapped[str | None] = mapped_column(String(200), default=None)
    digest: Mapped[str | None] = mapped_column(String(80), default=None)
    ready: Mapped[bool | None] = mapped_column(Boolean, default=None)
    reason: Mapped[str | None] = mapped_column(String(100), default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The cluster's timestamp of the event this row reflects: an older one arriving later (Flux
    # retries failed deliveries) must not overwrite it.
    event_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class DeploymentCluster(Base):
    """A deployment's current state in one cluster."""

    __tablename__ = "deployment_clusters"
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), primary_key=True)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))
    revision: Mapped[str | None] = mapped_column(String(200), default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TimelineEntry(Base):
    """One step of a deployment: fjord's own (cluster None) or a Flux event from a cluster."""

    __tablename__ = "timeline"
    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), index=True)
    cluster_id: Mapped[str | None] = mapped_column(String(200), default=None)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    severity: Mapped[str] = mapped_column(String(10), default="info")
    reason: Mapped[str] = mapped_column(String(100))
    message: Mapped[str] = mapped_column(Text, default="")


class FluxEvent(Base):
    """Every authenticated event a cluster posted; the hash makes replays no-ops."""

    __tablename__ = "flux_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id"))
    event_hash: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(100))
    namespace: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(253))
    severity: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(100))
    message: Mapped[str] = mapped_column(Text)
    revision: Mapped[str | None] = mapped_column(String(200), default=None)
    __table_args__ = (UniqueConstraint("cluster_id", "event_hash"),)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # None: every environment of the granted orgs; else only these (comma-free names).
    environments: Mapped[list[str] | None] = mapped_column(JSON, default=None)


class Grant(Base):
    """A token's role in one org, or in every org with ``org = "*"``."""

    __tablename__ = "grants"
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"), primary_key=True)
    org: Mapped[str] = mapped_column(String(63), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))


class AuditEntry(Base):
    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    # Who it really was: the identity provider (an OIDC issuer, or ``fjord`` for API tokens
    # and the control plane itself) and the subject there.
    actor_subject: Mapped[str | None] = mapped_column(String(200), default=None)
    actor_provider: Mapped[str | None] = mapped_column(String(300), default=None)
    org: Mapped[str | None] = mapped_column(String(63), index=True)
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(300))
    detail: Mapped[dict[str, Any]] = mapped_column()


class Lock(Base):
    """A named lease: inserting the row takes it, the primary key makes it exclusive.

    ``owner`` is a replica id; its heartbeat renews ``expires``, so a lock never outlives the
    lease of the replica that took it."""

    __tablename__ = "locks"
    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    expires: Mapped[float] = mapped_column(Float)  # Unix time; a lease past it may be taken
