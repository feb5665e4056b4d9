"""The one client of fjord's HTTP API: typed calls, typed answers, meaningful errors.

The CLI, the local platform (``fjord dev up``), the tests and the benchmarks all call the
control plane through :class:`FjordClient`. Answers are the server's own response models
(``fjord.control.views``, ``fjord.api.models``), so a renamed field breaks the type check, not
a user. Every error answer becomes :class:`ApiError` (status, message, hint and the body's
details, e.g. ``current_version`` after a stale config write); a server that cannot be reached
becomes :class:`Unreachable`.

Only pydantic and httpx2 are imported here: a remote ``fjord`` command does not load FastAPI,
SQLAlchemy or the control plane.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote

import httpx2
from pydantic import TypeAdapter

from fjord.api.models import IngestResponse, WhoAmI
from fjord.control import states
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
from fjord.errors import FjordError

T = TypeVar("T")

DEFAULT_TIMEOUT = 600.0  # generous: a change is queued at once, but an upload can be large
# Where following a deployment stops: final, or waiting for a person.
SETTLED = (*states.FINAL, states.AWAITING_APPROVAL, states.HALTED)


class ClientError(FjordError):
    """A call that did not get a successful answer."""


class ApiError(ClientError):
    """The server answered with an error: ``status`` and its JSON ``{"error", "hint", …}``."""

    def __init__(
        self,
        status: int,
        message: str,
        hint: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.details = dict(details or {})


class Unreachable(ClientError):
    """No answer at all: connection refused, DNS, TLS, timeout."""


class InvalidName(ClientError):
    """An app name that is not ``org/app``."""


def app_path(name: str) -> str:
    """``org/app`` checked and quoted for a URL."""
    org, sep, app = name.partition("/")
    if not sep or not org or not app or "/" in app:
        raise InvalidName(f"app names are org/app, got {name!r}")
    return f"/api/apps/{quote(org, safe='')}/{quote(app, safe='')}"


class _Answer(Generic[T]):
    """How to read one kind of answer; the validator is built on first use (each costs a few
    ms to build, and one command reads one or two kinds)."""

    def __init__(self, kind: Any) -> None:
        self._kind = kind
        self._adapter: TypeAdapter[T] | None = None

    def read(self, content: bytes) -> T:
        if self._adapter is None:
            self._adapter = TypeAdapter(self._kind)
        return self._adapter.validate_json(content or b"null")


_APPS: _Answer[list[AppView]] = _Answer(list[AppView])
_APP: _Answer[AppView] = _Answer(AppView)
_CONFIG: _Answer[ConfigVersionView] = _Answer(ConfigVersionView)
_CONFIGS: _Answer[list[ConfigVersionView]] = _Answer(list[ConfigVersionView])
_MAYBE_CONFIG: _Answer[ConfigVersionView | None] = _Answer(ConfigVersionView | None)
_DEPLOYMENT: _Answer[DeploymentView] = _Answer(DeploymentView)
_WINDOW: _Answer[WindowView] = _Answer(WindowView)
_PROMOTION: _Answer[PromotionView] = _Answer(PromotionView)
_OUTCOMES: _Answer[OutcomesView] = _Answer(OutcomesView)
_CREATED_HOOK: _Answer[CreatedHook] = _Answer(CreatedHook)
_HOOK: _Answer[HookView] = _Answer(HookView)
_HOOKS: _Answer[list[HookView]] = _Answer(list[HookView])
_DELIVERIES: _Answer[list[DeliveryView]] = _Answer(list[DeliveryView])
_DEPLOYMENTS: _Answer[list[DeploymentView]] = _Answer(list[DeploymentView])
_STATUS: _Answer[AppStatusView] = _Answer(AppStatusView)
_STATUSES: _Answer[list[AppStatusView]] = _Answer(list[AppStatusView])
_INFRA: _Answer[AppInfraView] = _Answer(AppInfraView)
_RELEASES: _Answer[list[ReleaseView]] = _Answer(list[ReleaseView])
_RELEASE: _Answer[ReleaseView] = _Answer(ReleaseView)
_DIFF: _Answer[DiffView] = _Answer(DiffView)
_AUDIT: _Answer[list[AuditView]] = _Answer(list[AuditView])
_CLUSTER: _Answer[ClusterView] = _Answer(ClusterView)
_CLUSTERS: _Answer[list[ClusterView]] = _Answer(list[ClusterView])
_OBJECTS: _Answer[list[dict[str, Any]]] = _Answer(list[dict[str, Any]])
_TOKEN: _Answer[CreatedToken] = _Answer(CreatedToken)
_TOKENS: _Answer[list[TokenView]] = _Answer(list[TokenView])
_WHOAMI: _Answer[WhoAmI] = _Answer(WhoAmI)
_INGESTED: _Answer[IngestResponse] = _Answer(IngestResponse)


def _error_of(response: httpx2.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip() or response.reason_phrase
        return ApiError(response.status_code, f"{response.status_code}: {text}")
    message = body.get("error") or body.get("detail") or response.reason_phrase
    details = {k: v for k, v in body.items() if k not in ("error", "hint")}
    return ApiError(response.status_code, str(message), body.get("hint"), details)


class FjordClient:
    """Async calls to one fjord API. ``async with FjordClient.remote(url, token) as api: …``"""

    def __init__(self, http: httpx2.AsyncClient, *, owns_http: bool = True) -> None:
        self.http = http
        self._owns_http = owns_http

    @classmethod
    def remote(
        cls, url: str, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> FjordClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return cls(httpx2.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=timeout))

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ---- one code path for every call --------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx2.Response:
        """One call; an error answer raises :class:`ApiError`, no answer :class:`Unreachable`."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self.http.request(
                method, path, json=json, params=query, headers=headers, content=content
            )
        except httpx2.TransportError as exc:
            raise Unreachable(
                f"cannot reach {self.http.base_url}: {exc or type(exc).__name__}",
                "is the server running, and is --server (FJORD_SERVER) right?",
            ) from exc
        if response.status_code >= 400:
            raise _error_of(response)
        return response

    async def _call(self, answer: _Answer[T], method: str, path: str, **kwargs: Any) -> T:
        response = await self.request(method, path, **kwargs)
        return answer.read(response.content)

    # ---- who am I ------------------------------------------------------------------------------

    async def whoami(self) -> WhoAmI:
        return await self._call(_WHOAMI, "GET", "/api/whoami")

    # ---- apps and dynamic config -------------------------------------------------------------

    async def list_apps(self, org: str | None = None) -> list[AppView]:
        return await self._call(_APPS, "GET", "/api/apps", params={"org": org})

    async def create_app(
        self,
        name: str,
        repo: str,
        *,
        tag_pattern: str | None = "v*",
        deploy_branch: str | None = None,
        deploy_environment: str | None = None,
    ) -> AppView:
        """Register ``org/app`` by its Git repository's clone URL (and its webhook, if the
        server knows Gitea); ``deploy_branch`` → ``deploy_environment`` deploys pushes."""
        app_path(name)
        body = {
            "name": name,
            "repo": repo,
            "tag_pattern": tag_pattern,
            "deploy_branch": deploy_branch,
            "deploy_environment": deploy_environment,
        }
        return await self._call(_APP, "POST", "/api/apps", json=body)

    async def set_credential(self, org: str, token: str) -> None:
        """Replace ``org``'s read token for its Git repositories (stored encrypted)."""
        await self.request("PUT", f"/api/orgs/{org}/credential", json={"token": token})

    async def create_release(self, name: str, ref: str, *, image: str | None = None) -> ReleaseView:
        """Build ``name`` at a tag, branch or commit with its current config; push and sign."""
        body = {"ref": ref, "image": image}
        return await self._call(_RELEASE, "POST", f"{app_path(name)}/releases", json=body)

    async def get_release(self, name: str, release_id: int) -> ReleaseView:
        return await self._call(_RELEASE, "GET", f"{app_path(name)}/releases/{release_id}")

    async def get_app(self, name: str) -> AppView:
        return await self._call(_APP, "GET", app_path(name))

    async def get_config(self, name: str, version: int | None = None) -> ConfigVersionView | None:
        """A version (the latest by default); None when the app has no config yet."""
        path = f"{app_path(name)}/config"
        return await self._call(_MAYBE_CONFIG, "GET", path, params={"version": version})

    async def config_versions(self, name: str) -> list[ConfigVersionView]:
        return await self._call(_CONFIGS, "GET", f"{app_path(name)}/config/versions")

    async def set_config(
        self, name: str, values: Mapping[str, Any], reason: str, *, expected_version: int
    ) -> ConfigVersionView:
        """Compare-and-set: becomes ``expected_version + 1`` or raises ApiError 409 whose
        ``details["current_version"]`` is the latest (0: the app has no config yet)."""
        return await self._call(
            _CONFIG,
            "PUT",
            f"{app_path(name)}/config",
            json={"values": dict(values), "reason": reason},
            headers={"If-Match": f'"{expected_version}"'},
        )

    # ---- changes: each starts a deployment ---------------------------------------------------

    async def _change(self, path: str, body: dict[str, Any]) -> DeploymentView:
        return await self._call(_DEPLOYMENT, "POST", path, json=body)

    async def deploy(
        self,
        name: str,
        environment: str,
        *,
        ref: str | None = None,
        release: int | None = None,
        image: str | None = None,
        idempotency_key: str | None = None,
    ) -> DeploymentView:
        """Queue a deploy of ``ref`` (tag, branch or commit; None: the default branch's head) or
        of an existing ``release``; the ref is pinned to its commit by the server now."""
        body = {
            "environment": environment,
            "ref": ref,
            "release": release,
            "image": image,
            "idempotency_key": idempotency_key,
        }
        return await self._change(f"{app_path(name)}/deployments", body)

    async def rotate(
        self,
        name: str,
        environment: str,
        *,
        reason: str = "rotate credentials",
        idempotency_key: str | None = None,
    ) -> DeploymentView:
        """New backing-service credentials: the server raises the environment's rotation
        counter in a new config version and queues a deploy pinned to it."""
        body = {"environment": environment, "reason": reason, "idempotency_key": idempotency_key}
        return await self._change(f"{app_path(name)}/rotations", body)

    async def promote(
        self, name: str, to: str, *, idempotency_key: str | None = None
    ) -> DeploymentView:
        body = {"to": to, "idempotency_key": idempotency_key}
        return await self._change(f"{app_path(name)}/promotions", body)

    async def rollback(
        self,
        name: str,
        environment: str,
        *,
        to: str | None = None,
        idempotency_key: str | None = None,
    ) -> DeploymentView:
        body = {"environment": environment, "to": to, "idempotency_key": idempotency_key}
        return await self._change(f"{app_path(name)}/rollbacks", body)

    async def undeploy(
        self, name: str, environment: str, *, idempotency_key: str | None = None
    ) -> DeploymentView:
        body = {"environment": environment, "idempotency_key": idempotency_key}
        return await self._change(f"{app_path(name)}/undeployments", body)

    async def approve(self, deployment_id: int) -> DeploymentView:
        return await self._change(f"/api/deployments/{deployment_id}/approve", {})

    async def create_notification_hook(
        self, org: str, url: str, *, app: str | None = None, format_: str = "cloudevents"
    ) -> CreatedHook:
        body = {"url": url, "app": app, "format": format_}
        return await self._call(_CREATED_HOOK, "POST", f"/api/orgs/{org}/notifications", json=body)

    async def notification_hooks(self, org: str) -> list[HookView]:
        return await self._call(_HOOKS, "GET", f"/api/orgs/{org}/notifications")

    async def enable_notification_hook(self, hook_id: int) -> HookView:
        return await self._call(_HOOK, "POST", f"/api/notifications/{hook_id}/enable", json={})

    async def notification_deliveries(self, hook_id: int) -> list[DeliveryView]:
        return await self._call(_DELIVERIES, "GET", f"/api/notifications/{hook_id}/deliveries")

    async def promotion(self, name: str, to: str) -> PromotionView:
        """Whether ``name`` may be promoted to ``to`` now, and how long remains if not."""
        return await self._call(_PROMOTION, "GET", f"{app_path(name)}/promotion", params={"to": to})

    async def outcomes(self, name: str) -> OutcomesView:
        """``name``'s delivery outcomes per environment over the last 90 days."""
        return await self._call(_OUTCOMES, "GET", f"{app_path(name)}/outcomes")

    async def override_window(self, deployment_id: int) -> DeploymentView:
        """Let a deployment through outside its delivery window (platform-admin; audited)."""
        return await self._change(f"/api/deployments/{deployment_id}/window-override", {})

    async def environment_window(self, environment: str) -> WindowView:
        return await self._call(_WINDOW, "GET", f"/api/environments/{environment}/window")

    async def rollout_action(self, deployment_id: int, action: str) -> DeploymentView:
        """``resume``, ``abort`` or ``rollback`` a rollout in waves (app-admin; audited)."""
        return await self._change(f"/api/deployments/{deployment_id}/rollout/{action}", {})

    # ---- reads ---------------------------------------------------------------------------------

    async def get_deployment(self, deployment_id: int) -> DeploymentView:
        return await self._call(_DEPLOYMENT, "GET", f"/api/deployments/{deployment_id}")

    async def wait_deployment(
        self,
        deployment_id: int,
        *,
        until: tuple[str, ...] = SETTLED,
        timeout: float = 300.0,
        interval: float = 0.5,
    ) -> DeploymentView:
        """Poll until the deployment's state is in ``until``; after ``timeout``, the last seen
        (the caller looks at its state)."""
        deadline = time.monotonic() + timeout
        while True:
            deployment = await self.get_deployment(deployment_id)
            if deployment.state in until or time.monotonic() > deadline:
                return deployment
            await asyncio.sleep(interval)

    async def app_status(self, name: str) -> AppStatusView:
        return await self._call(_STATUS, "GET", f"{app_path(name)}/status")

    async def app_infra(self, name: str) -> AppInfraView:
        return await self._call(_INFRA, "GET", f"{app_path(name)}/infra")

    async def matrix(self) -> list[AppStatusView]:
        return await self._call(_STATUSES, "GET", "/api/status")

    async def history(
        self,
        name: str,
        *,
        environment: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> list[DeploymentView]:
        params = {"environment": environment, "limit": limit, "before": before}
        return await self._call(_DEPLOYMENTS, "GET", f"{app_path(name)}/history", params=params)

    async def releases(self, name: str) -> list[ReleaseView]:
        return await self._call(_RELEASES, "GET", f"{app_path(name)}/releases")

    async def diff(self, name: str, from_digest: str, to_digest: str) -> DiffView:
        params = {"from": from_digest, "to": to_digest}
        return await self._call(_DIFF, "GET", f"{app_path(name)}/diff", params=params)

    async def audit(
        self,
        *,
        org: str | None = None,
        action: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[AuditView]:
        params = {"org": org, "action": action, "limit": limit, "before": before}
        return await self._call(_AUDIT, "GET", "/api/audit", params=params)

    # ---- clusters ------------------------------------------------------------------------------

    async def list_clusters(self, org: str | None = None) -> list[ClusterView]:
        return await self._call(_CLUSTERS, "GET", "/api/clusters", params={"org": org})

    async def set_receiver(self, cluster_id: str, url: str | None) -> ClusterView:
        path = f"/api/clusters/{quote(cluster_id, safe='')}/receiver"
        return await self._call(_CLUSTER, "PUT", path, json={"url": url})

    async def bootstrap(self, org: str, environment: str, cluster: str) -> list[dict[str, Any]]:
        """The cluster's one-time manifests (Kubernetes objects to apply)."""
        body = {"org": org, "environment": environment, "cluster": cluster}
        return await self._call(_OBJECTS, "POST", "/api/clusters/bootstrap", json=body)

    async def flux_event(
        self, cluster_id: str, body: bytes, signature: str | None
    ) -> IngestResponse:
        """Post a Flux event as the cluster's notification-controller does (raw, signed body)."""
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Signature"] = signature
        path = f"/api/flux/events/{quote(cluster_id, safe='')}"
        return await self._call(_INGESTED, "POST", path, content=body, headers=headers)

    # ---- tokens --------------------------------------------------------------------------------

    async def list_tokens(self) -> list[TokenView]:
        return await self._call(_TOKENS, "GET", "/api/tokens")

    async def create_token(
        self,
        name: str,
        grants: Mapping[str, str],
        *,
        expires_in_days: float | None = None,
        environments: Sequence[str] | None = None,
    ) -> CreatedToken:
        body: dict[str, Any] = {"name": name, "grants": dict(grants)}
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        if environments:
            body["environments"] = list(environments)
        return await self._call(_TOKEN, "POST", "/api/tokens", json=body)

    async def revoke_token(self, token_id: int) -> None:
        await self.request("DELETE", f"/api/tokens/{token_id}")
