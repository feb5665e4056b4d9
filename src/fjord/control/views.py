"""What the services return: plain pydantic models, the same for the API, CLI and web UI."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel


class AppView(BaseModel):
    org: str
    app: str
    source: str  # the Git repository's clone URL
    created_at: dt.datetime
    tag_pattern: str | None = None
    deploy_branch: str | None = None
    deploy_environment: str | None = None
    webhook: bool = False


class ConfigVersionView(BaseModel):
    version: int
    values: dict[str, Any]
    author: str
    reason: str
    created_at: dt.datetime


class ReleaseView(BaseModel):
    id: int
    org: str
    app: str
    digest: str
    source: str
    revision: str
    config_version: int
    builder: str
    environments: list[str]
    created_at: dt.datetime
    ref: str | None = None
    commit: str | None = None
    image: str | None = None
    commit_url: str | None = None


class ClusterStateView(BaseModel):
    cluster: str
    state: str  # pending | ready | failed
    revision: str | None
    message: str | None
    updated_at: dt.datetime


class TimelineView(BaseModel):
    at: dt.datetime
    cluster: str | None
    severity: str
    reason: str
    message: str


class StepView(BaseModel):
    """One declared step of a deployment's pipeline as run so far (``finished_at`` None: open)."""

    name: str
    replica: str
    attempts: int
    started_at: dt.datetime
    finished_at: dt.datetime | None


class WaveView(BaseModel):
    """One wave of a rollout: ``pending`` → ``running`` (tags moved, gate open) → ``soaking``
    → ``done``; ``halted`` where the rollout stopped."""

    number: int  # 1-based
    clusters: list[str]
    soak_seconds: int
    state: str
    started_at: dt.datetime | None = None
    ready_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None


class RolloutView(BaseModel):
    """A deployment's waves in an environment with a rollout strategy."""

    state: str  # running | halted | rolling_back | rolled_back | aborted | done
    wave: int  # the wave in progress (1-based)
    waves: list[WaveView]
    message: str | None = None
    failure_budget: int = 0
    failed: list[str] = []  # clusters whose failure used the budget
    rollback_on_failure: bool = False
    next_check: dt.datetime | None = None  # when a worker looks again (soak end, gate check)


class PromotionView(BaseModel):
    """Whether the release healthy in ``from_environment`` may be promoted to
    ``to_environment`` now, and if not, why and how long remains."""

    app: str
    from_environment: str
    to_environment: str
    promotable: bool
    reason: str | None = None
    digest: str | None = None
    release_id: int | None = None
    healthy_since: dt.datetime | None = None
    soak_seconds: int = 0
    remaining_seconds: int = 0


class HookView(BaseModel):
    """An outbound notification webhook of an org or app (``app`` None: every app)."""

    id: int
    org: str
    app: str | None
    url: str
    format: str
    enabled: bool
    failures: int
    disabled_reason: str | None
    created_by: str
    created_at: dt.datetime


class CreatedHook(BaseModel):
    secret: str  # the HMAC key; shown once
    hook: HookView


class DeliveryView(BaseModel):
    id: int
    event_id: str
    event_type: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    delivered_at: dt.datetime | None


class WindowView(BaseModel):
    """An environment's delivery windows now: open until ``closes_at``, or closed until
    ``opens_at`` (no windows: always open)."""

    environment: str
    open: bool
    closes_at: dt.datetime | None = None
    opens_at: dt.datetime | None = None
    time_zone: str = "UTC"
    windows: list[dict[str, Any]] = []


class DeploymentView(BaseModel):
    id: int
    org: str
    app: str
    environment: str
    kind: str
    state: str
    step: str | None
    reason: str | None
    digest: str | None
    revision: str | None
    config_version: int | None
    requested_by: str
    approved_by: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None
    release_id: int | None = None
    ref: str | None = None
    commit: str | None = None
    commit_url: str | None = None
    image: str | None = None
    # provider#subject of the requester: four eyes compares it (None: requested before 0006)
    requested_by_identity: str | None = None
    clusters: list[ClusterStateView] = []
    timeline: list[TimelineView] = []
    steps: list[StepView] = []
    rollout: RolloutView | None = None
    window_override_by: str | None = None
    not_before: dt.datetime | None = None  # waiting (window, wave check): due again then

    @property
    def done(self) -> bool:
        return self.state in ("ready", "failed", "superseded", "aborted", "rolled_back")


class ClusterView(BaseModel):
    id: str
    org: str
    environment: str
    name: str
    receiver_url: str | None
    bootstrapped: bool
    active: bool
    # What the cluster's root sync (Kustomization fjord-sync) last reported.
    sync_revision: str | None = None
    sync_ready: bool | None = None
    sync_message: str | None = None


class CellView(BaseModel):
    """One app in one cluster: what Flux last reported."""

    cluster: str
    revision: str | None
    digest: str | None
    ready: bool | None
    # Flux's "Kind/Reason" of the last event, or fjord's own verdict ("fjord/UnknownRevision").
    reason: str | None = None
    message: str | None
    updated_at: dt.datetime | None


class EnvStatusView(BaseModel):
    environment: str
    deployment: DeploymentView | None  # the latest deployment there
    clusters: list[CellView]


class AppStatusView(BaseModel):
    org: str
    app: str
    environments: list[EnvStatusView]


class FileDiff(BaseModel):
    path: str
    diff: str


class CommitView(BaseModel):
    commit: str
    author: str
    subject: str
    url: str | None = None  # the commit's page on the Git server


class DiffView(BaseModel):
    from_digest: str
    to_digest: str
    files: list[FileDiff]
    config: str
    # The commits in the newer release's source that the older one lacks (newest first);
    # empty when either release was not built from Git or the range cannot be read.
    commits: list[CommitView] = []
    # Where each release came from, and the Git server's compare page between the two commits.
    from_ref: str | None = None
    to_ref: str | None = None
    from_commit: str | None = None
    to_commit: str | None = None
    compare_url: str | None = None


class TokenView(BaseModel):
    id: int
    name: str
    grants: dict[str, str]
    created_by: str
    created_at: dt.datetime
    revoked: bool
    expires_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None
    environments: list[str] | None = None  # None: every environment of the granted orgs


class CreatedToken(BaseModel):
    token: str  # shown once; only its hash is stored
    info: TokenView


class AuditView(BaseModel):
    """One audit log entry: who did what to which target, and the details that matter."""

    id: int
    at: dt.datetime
    actor: str
    subject: str | None = None  # the actor at its identity provider (None: recorded before)
    provider: str | None = None
    org: str | None
    action: str
    target: str
    detail: dict[str, Any]


# Infra resources per environment and cluster (``control.infra``): the states are
# ready | failed | pending | unknown (the app failed there for a reason naming another object).
class InfraResourceView(BaseModel):
    kind: str
    namespace: str
    name: str
    state: str  # ready | failed | pending | unknown
    message: str | None = None


class InfraClusterView(BaseModel):
    cluster: str
    revision: str | None  # what Flux applied there last
    resources: list[InfraResourceView]
    updated_at: dt.datetime | None = None


class InfraEnvView(BaseModel):
    environment: str
    digest: str | None  # the release the environment's latest deployment points at
    clusters: list[InfraClusterView]


class AppInfraView(BaseModel):
    org: str
    app: str
    environments: list[InfraEnvView]


class EnvironmentOutcomesView(BaseModel):
    """One environment's delivery outcomes over the window (``control/outcomes.py``). Times are
    means in seconds; ``None`` where nothing was measured."""

    environment: str
    ready: int = 0
    failed: int = 0
    rolled_back: int = 0
    aborted: int = 0
    deployments_per_day: float = 0.0
    change_failure_rate: float | None = None  # (failed + rolled_back + aborted) / finished
    lead_time_seconds: float | None = None  # request → every cluster ready
    time_to_restore_seconds: float | None = None  # first failure → the next ready one
    restores: int = 0


class OutcomesView(BaseModel):
    """An app's delivery outcomes (the DORA four as fjord sees them) per environment."""

    app: str
    window_days: int
    environments: list[EnvironmentOutcomesView]


def duration(seconds: float | None) -> str:
    """A measured time for people (CLI, UI): ``1h 2m 3s``; ``–`` when nothing was measured."""
    if seconds is None:
        return "–"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return " ".join(f"{n}{unit}" for n, unit in parts if n) or "0s"
