"""The JSON API under ``/api``: one thin handler per service function."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from fjord.api.deps import ActorDep, PlaneDep
from fjord.api.metrics import metrics_of
from fjord.api.models import (
    KEY_LENGTH,
    MAX_ROW_ID,
    AuthConfig,
    BootstrapRequest,
    CreateApp,
    CreateRelease,
    CreateToken,
    DeployRequest,
    IngestResponse,
    NotificationHookRequest,
    PromoteRequest,
    ReceiverRequest,
    RollbackRequest,
    RotateRequest,
    SetConfig,
    SetCredential,
    UndeployRequest,
    WhoAmI,
)
from fjord.api.params import ConfigVersionNumber, Cursor, RowId
from fjord.control import (
    InvalidError,
    UnauthenticatedError,
    apps,
    audit,
    builds,
    clusters,
    credentials,
    deploys,
    events,
    notifications,
    outcomes,
    promotions,
    queries,
    tokens,
    webhooks,
    windowgate,
)
from fjord.control.infra import app_infra
from fjord.control.rollouts import ROLLOUT_ACTIONS, RolloutAction
from fjord.control.views import (
    AppInfraView,
    AppStatusView,
    AppView,
    AuditView,
    ClusterView,
    ConfigVersionView,
    CreatedHook,
    CreatedToken,
    DeliveryView,
    DeploymentView,
    DiffView,
    HookView,
    OutcomesView,
    PromotionView,
    ReleaseView,
    TokenView,
    WindowView,
)

router = APIRouter(prefix="/api")
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=KEY_LENGTH)]
IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", description='the config version the write is based on: "3"'),
]


def _name(org: str, app: str) -> str:
    return f"{org}/{app}"


@router.get("/whoami")
async def whoami(actor: ActorDep) -> WhoAmI:
    return WhoAmI(
        name=actor.name, grants=actor.describe(), subject=actor.subject, provider=actor.provider
    )


@router.get("/auth/config")
async def auth_config(plane: PlaneDep) -> AuthConfig:
    """How a CLI signs in here (``fjord login``): the provider and the public client; no token."""
    oidc = plane.settings.oidc
    if oidc is None or oidc.cli_client_id is None:
        return AuthConfig(issuer=None, client_id=None, scopes=[])
    return AuthConfig(issuer=oidc.issuer, client_id=oidc.cli_client_id, scopes=list(oidc.scopes))


@router.get("/apps")
async def list_apps(plane: PlaneDep, actor: ActorDep, org: str | None = None) -> list[AppView]:
    return await apps.list_apps(plane, actor, org)


@router.post("/apps", status_code=201)
async def create_app(plane: PlaneDep, actor: ActorDep, body: CreateApp) -> AppView:
    return await apps.create_app(
        plane,
        actor,
        body.name,
        body.repo,
        tag_pattern=body.tag_pattern,
        deploy_branch=body.deploy_branch,
        deploy_environment=body.deploy_environment,
    )


@router.put("/orgs/{org}/credential", status_code=204)
async def set_credential(plane: PlaneDep, actor: ActorDep, org: str, body: SetCredential) -> None:
    """Replace the org's read token for its Git repositories (stored encrypted, never shown)."""
    await credentials.set_credential(plane, actor, org, body.token)


@router.post("/apps/{org}/{app}/releases", status_code=201)
async def create_release(
    plane: PlaneDep, actor: ActorDep, org: str, app: str, body: CreateRelease
) -> ReleaseView:
    """Build the app at a tag, branch or commit with its current config; push and sign it."""
    row = await builds.create_release(plane, actor, _name(org, app), body.ref, image=body.image)
    return await queries.get_release(plane, actor, _name(org, app), row.id)


@router.get("/apps/{org}/{app}/releases/{release_id}")
async def get_release(
    plane: PlaneDep, actor: ActorDep, org: str, app: str, release_id: RowId
) -> ReleaseView:
    return await queries.get_release(plane, actor, _name(org, app), release_id)


@router.post("/hooks/gitea", status_code=202)
async def gitea_webhook(
    plane: PlaneDep,
    request: Request,
    x_gitea_event: Annotated[str | None, Header()] = None,
    x_gitea_delivery: Annotated[str | None, Header()] = None,
    x_gitea_signature: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Gitea's push deliveries; authenticated by the app's hook secret, not an API token. What
    a delivery asks for is queued before the answer (a worker runs it)."""
    body = await request.body()  # the HMAC covers the raw bytes
    action = await webhooks.receive(
        plane,
        body,
        event=x_gitea_event,
        delivery=x_gitea_delivery,
        signature=x_gitea_signature,
    )
    return {"app": action.app, "action": action.kind, "detail": action.detail}


@router.get("/apps/{org}/{app}")
async def get_app(plane: PlaneDep, actor: ActorDep, org: str, app: str) -> AppView:
    return await apps.get_app(plane, actor, _name(org, app))


def _etag(version: int) -> str:
    return f'"{version}"'


def _expected_version(if_match: str | None, field: int | None) -> int | None:
    """The version a config write is based on, from ``If-Match: "N"`` or ``expected_version``."""
    header = None
    if if_match is not None:
        text = if_match.strip().removeprefix("W/").strip('"')
        if not (text.isascii() and text.isdigit() and len(text) <= 10) or int(text) > MAX_ROW_ID:
            raise InvalidError(
                f'header If-Match: expected a config version such as "3", got {if_match!r}'
            )
        header = int(text)
    if header is not None and field is not None and header != field:
        raise InvalidError(
            f"header If-Match ({header}) and body field expected_version ({field}) disagree"
        )
    return header if header is not None else field


@router.get("/apps/{org}/{app}/config")
async def get_config(
    plane: PlaneDep,
    actor: ActorDep,
    response: Response,
    org: str,
    app: str,
    version: ConfigVersionNumber = None,
) -> ConfigVersionView | None:
    """A config version (the latest by default); its ``ETag`` is what a write sends back."""
    found = await apps.get_config(plane, actor, _name(org, app), version)
    response.headers["ETag"] = _etag(found.version if found else 0)
    return found


@router.get("/apps/{org}/{app}/config/versions")
async def config_versions(
    plane: PlaneDep, actor: ActorDep, org: str, app: str
) -> list[ConfigVersionView]:
    return await apps.config_versions(plane, actor, _name(org, app))


@router.put("/apps/{org}/{app}/config")
async def set_config(
    plane: PlaneDep,
    actor: ActorDep,
    response: Response,
    org: str,
    app: str,
    body: SetConfig,
    if_match: IfMatch = None,
) -> ConfigVersionView:
    """Compare-and-set: stored as version N+1 only if N (``If-Match`` or ``expected_version``)
    is still the latest; else 409 with ``current_version``; 428 without either."""
    expected = _expected_version(if_match, body.expected_version)
    written = await apps.set_config(
        plane,
        actor,
        _name(org, app),
        body.values,
        body.reason,
        expected_version=expected,
        version_required=True,
    )
    response.headers["ETag"] = _etag(written.version)
    return written


@router.post("/apps/{org}/{app}/deployments", status_code=202)
async def deploy(
    plane: PlaneDep,
    actor: ActorDep,
    org: str,
    app: str,
    body: DeployRequest,
    idempotency_key: IdempotencyKey = None,
) -> DeploymentView:
    return await deploys.deploy(
        plane,
        actor,
        _name(org, app),
        body.environment,
        git_ref=body.ref,
        release_id=body.release,
        image=body.image,
        idempotency_key=body.idempotency_key or idempotency_key,
    )


@router.get("/apps/{org}/{app}/promotion")
async def promotion(plane: PlaneDep, actor: ActorDep, org: str, app: str, to: str) -> PromotionView:
    """May the release healthy in the environment before ``to`` be promoted now; if not, why
    and how many seconds remain."""
    return await promotions.check(plane, actor, _name(org, app), to)


@router.post("/apps/{org}/{app}/promotions", status_code=202)
async def promote(
    plane: PlaneDep,
    actor: ActorDep,
    org: str,
    app: str,
    body: PromoteRequest,
    idempotency_key: IdempotencyKey = None,
) -> DeploymentView:
    return await deploys.promote(
        plane,
        actor,
        _name(org, app),
        to=body.to,
        idempotency_key=body.idempotency_key or idempotency_key,
    )


@router.post("/apps/{org}/{app}/rollbacks", status_code=202)
async def rollback(
    plane: PlaneDep,
    actor: ActorDep,
    org: str,
    app: str,
    body: RollbackRequest,
    idempotency_key: IdempotencyKey = None,
) -> DeploymentView:
    return await deploys.rollback(
        plane,
        actor,
        _name(org, app),
        body.environment,
        to=body.to,
        idempotency_key=body.idempotency_key or idempotency_key,
    )


@router.post("/apps/{org}/{app}/rotations", status_code=202)
async def rotate(
    plane: PlaneDep,
    actor: ActorDep,
    org: str,
    app: str,
    body: RotateRequest,
    idempotency_key: IdempotencyKey = None,
) -> DeploymentView:
    """New backing-service credentials in one environment: a config version and a deploy."""
    return await deploys.rotate(
        plane,
        actor,
        _name(org, app),
        body.environment,
        reason=body.reason,
        idempotency_key=body.idempotency_key or idempotency_key,
    )


@router.post("/apps/{org}/{app}/undeployments", status_code=202)
async def undeploy(
    plane: PlaneDep,
    actor: ActorDep,
    org: str,
    app: str,
    body: UndeployRequest,
    idempotency_key: IdempotencyKey = None,
) -> DeploymentView:
    return await deploys.undeploy(
        plane,
        actor,
        _name(org, app),
        body.environment,
        idempotency_key=body.idempotency_key or idempotency_key,
    )


@router.get("/apps/{org}/{app}/status")
async def status(plane: PlaneDep, actor: ActorDep, org: str, app: str) -> AppStatusView:
    return await queries.app_status(plane, actor, _name(org, app))


@router.get("/apps/{org}/{app}/infra")
async def infra(plane: PlaneDep, actor: ActorDep, org: str, app: str) -> AppInfraView:
    """Per environment and cluster: the release's infra resources and whether they are Ready."""
    return await app_infra(plane, actor, _name(org, app))


@router.get("/apps/{org}/{app}/history")
async def history(
    plane: PlaneDep,
    actor: ActorDep,
    org: str,
    app: str,
    environment: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Cursor = None,
) -> list[DeploymentView]:
    return await queries.history(
        plane, actor, _name(org, app), environment=environment, limit=limit, before=before
    )


@router.get("/apps/{org}/{app}/outcomes")
async def app_outcomes(plane: PlaneDep, actor: ActorDep, org: str, app: str) -> OutcomesView:
    """Per environment over the last 90 days: deployment frequency, lead time (request →
    ready), change failure rate, time to restore."""
    return await outcomes.app_outcomes(plane, actor, _name(org, app))


@router.get("/apps/{org}/{app}/releases")
async def releases(plane: PlaneDep, actor: ActorDep, org: str, app: str) -> list[ReleaseView]:
    return await queries.releases(plane, actor, _name(org, app))


@router.get("/apps/{org}/{app}/diff")
async def diff(
    plane: PlaneDep,
    actor: ActorDep,
    org: str,
    app: str,
    from_: Annotated[str, Query(alias="from")],
    to: str,
) -> DiffView:
    return await queries.diff(plane, actor, _name(org, app), from_, to)


@router.get("/status")
async def matrix(plane: PlaneDep, actor: ActorDep) -> list[AppStatusView]:
    return await queries.matrix(plane, actor)


@router.get("/audit")
async def audit_log(
    plane: PlaneDep,
    actor: ActorDep,
    org: str | None = None,
    action: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Cursor = None,
) -> list[AuditView]:
    """The audit log, newest first (``before``: an entry id, for the next page)."""
    return await audit.entries(plane, actor, org=org, action=action, limit=limit, before=before)


@router.get("/deployments/{deployment_id}")
async def get_deployment(plane: PlaneDep, actor: ActorDep, deployment_id: RowId) -> DeploymentView:
    return await queries.get_deployment(plane, actor, deployment_id)


@router.post("/deployments/{deployment_id}/approve", status_code=202)
async def approve(plane: PlaneDep, actor: ActorDep, deployment_id: RowId) -> DeploymentView:
    return await deploys.approve(plane, actor, deployment_id)


@router.post("/deployments/{deployment_id}/rollout/{action}", status_code=202)
async def rollout_action(
    plane: PlaneDep, actor: ActorDep, deployment_id: RowId, action: RolloutAction
) -> DeploymentView:
    """Resume, abort or roll back a rollout in waves (app-admin; audited)."""
    await ROLLOUT_ACTIONS[action](plane, actor, deployment_id)
    return await queries.get_deployment(plane, actor, deployment_id)


@router.post("/deployments/{deployment_id}/window-override", status_code=202)
async def window_override(plane: PlaneDep, actor: ActorDep, deployment_id: RowId) -> DeploymentView:
    """Let a deployment through outside its environment's delivery window (platform-admin)."""
    await windowgate.override(plane, actor, deployment_id)
    return await queries.get_deployment(plane, actor, deployment_id)


@router.get("/environments/{environment}/window")
async def environment_window(plane: PlaneDep, actor: ActorDep, environment: str) -> WindowView:
    """The environment's delivery windows now: open until when, or closed until when."""
    return await windowgate.environment_window(plane, actor, environment)


@router.post("/orgs/{org}/notifications", status_code=201)
async def create_notification_hook(
    plane: PlaneDep, actor: ActorDep, org: str, body: NotificationHookRequest
) -> CreatedHook:
    """An outbound webhook for the org's (or one app's) deployment events; the secret is shown
    once."""
    return await notifications.create_hook(
        plane, actor, org, body.url, app=body.app, format_=body.format
    )


@router.get("/orgs/{org}/notifications")
async def list_notification_hooks(plane: PlaneDep, actor: ActorDep, org: str) -> list[HookView]:
    return await notifications.list_hooks(plane, actor, org)


@router.post("/notifications/{hook_id}/enable")
async def enable_notification_hook(plane: PlaneDep, actor: ActorDep, hook_id: RowId) -> HookView:
    """Re-enable a hook disabled after repeated failures (audited)."""
    return await notifications.enable_hook(plane, actor, hook_id)


@router.get("/notifications/{hook_id}/deliveries")
async def notification_deliveries(
    plane: PlaneDep, actor: ActorDep, hook_id: RowId
) -> list[DeliveryView]:
    """The hook's delivery log, newest first."""
    return await notifications.deliveries(plane, actor, hook_id)


@router.get("/clusters")
async def list_clusters(
    plane: PlaneDep, actor: ActorDep, org: str | None = None
) -> list[ClusterView]:
    return await clusters.list_clusters(plane, actor, org)


@router.put("/clusters/{cluster_id}/receiver")
async def set_receiver(
    plane: PlaneDep, actor: ActorDep, cluster_id: str, body: ReceiverRequest
) -> ClusterView:
    return await clusters.set_receiver(plane, actor, cluster_id, body.url)


@router.post("/clusters/bootstrap")
async def bootstrap(
    plane: PlaneDep, actor: ActorDep, body: BootstrapRequest
) -> list[dict[str, Any]]:
    return await clusters.bootstrap(plane, actor, body.org, body.environment, body.cluster)


@router.get("/tokens")
async def list_tokens(plane: PlaneDep, actor: ActorDep) -> list[TokenView]:
    return await tokens.list_tokens(plane, actor)


@router.post("/tokens", status_code=201)
async def create_token(plane: PlaneDep, actor: ActorDep, body: CreateToken) -> CreatedToken:
    expires = dt.timedelta(days=body.expires_in_days) if body.expires_in_days else None
    return await tokens.create_token(
        plane, actor, body.name, body.grants, expires_in=expires, environments=body.environments
    )


@router.delete("/tokens/{token_id}", status_code=204)
async def revoke_token(plane: PlaneDep, actor: ActorDep, token_id: RowId) -> None:
    await tokens.revoke_token(plane, actor, token_id)


@router.post("/flux/events/{cluster_id}", status_code=202)
async def flux_event(
    plane: PlaneDep,
    request: Request,
    cluster_id: str,
    x_signature: Annotated[str | None, Header()] = None,
) -> IngestResponse:
    """Flux notification-controller's generic-hmac Provider posts here; no API token."""
    body = await request.body()  # the HMAC covers the raw bytes, so never re-serialise
    counter = metrics_of(request).flux_events
    try:
        result = await events.ingest(plane, cluster_id, body, x_signature)
    except UnauthenticatedError:
        counter.labels("refused").inc()
        raise
    except InvalidError:
        counter.labels("malformed").inc()
        raise
    counter.labels("recorded" if result.recorded else "replayed").inc()
    return IngestResponse(recorded=result.recorded, app=result.app)
