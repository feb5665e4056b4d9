"""The web UI: server-rendered pages, no JavaScript build.

Sign-in: through the OpenID provider (authorization code + PKCE, :mod:`fjord.api.oidc`) or by
pasting an ``fjt_`` API token. Either way the session lives in one cookie, encrypted with the
control plane's key (Fernet), HttpOnly and SameSite=Lax (Lax, not Strict: the provider's
redirect back is a cross-site navigation). An OIDC session holds the ID and refresh tokens; the
ID token is verified on every request and refreshed after ``session_refresh_seconds``, so team
changes reach the UI within that time. Every POST form carries the session's random CSRF token,
checked before anything changes, and every page sets a content-security policy that allows
only this origin's stylesheet and script.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jinja2
from cryptography.fernet import InvalidToken
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fjord.api.auth import Authenticator
from fjord.api.deps import get_authenticator, get_plane, get_settings
from fjord.api.errors import status_of
from fjord.api.models import nul_at
from fjord.api.oidc import Flow, new_flow
from fjord.api.params import RowId
from fjord.api.settings import ApiSettings
from fjord.control import (
    Actor,
    ControlPlane,
    Role,
    catalog,
    deploys,
    outcomes,
    promotions,
    queries,
    states,
    system_actor,
)
from fjord.control.errors import ForbiddenError, InvalidError, UnauthenticatedError
from fjord.control.infra import app_infra
from fjord.control.rollouts import ROLLOUT_ACTIONS, RolloutAction
from fjord.control.tokens import authenticate
from fjord.control.views import AppStatusView, duration
from fjord.errors import FjordError

router = APIRouter(include_in_schema=False)
templates = jinja2.Environment(
    loader=jinja2.PackageLoader("fjord.api", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

SESSION_COOKIE = "fjord_session"
FLOW_COOKIE = "fjord_oidc_flow"
FLOW_SECONDS = 600  # a sign-in at the provider must finish within this
CALLBACK_PATH = "/ui/oidc/callback"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def short(digest: str | None) -> str:
    return digest.removeprefix("sha256:")[:12] if digest else "–"


templates.filters["short"] = short
templates.filters["duration"] = duration


@dataclass(frozen=True)
class Session:
    actor: Actor
    csrf: str
    via: str  # "oidc", "token" or "local"


def _seal(plane: ControlPlane, data: dict[str, Any]) -> str:
    return plane.cipher.encrypt(json.dumps(data, separators=(",", ":")))


def _unseal(plane: ControlPlane, value: str, max_age: int | None = None) -> dict[str, Any] | None:
    try:
        if max_age is not None:
            text = plane.cipher.decrypt_fresh(value, max_age)
        else:
            text = plane.cipher.decrypt(value)
        data = json.loads(text)
    except (InvalidToken, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _set_session_cookie(response: Response, value: str) -> None:
    response.set_cookie(SESSION_COOKIE, value, httponly=True, samesite="lax", path="/")


async def _oidc_actor(
    request: Request, plane: ControlPlane, authenticator: Authenticator, data: dict[str, Any]
) -> Actor:
    provider, oidc = authenticator.provider, plane.settings.oidc
    if provider is None or oidc is None:
        raise UnauthenticatedError("sign-in through an OpenID provider is not configured")
    now = time.time()
    if now >= float(data["refresh_at"]) or now >= float(data["expires_at"]) - 30:
        tokens = await provider.refresh(data["refresh_token"], oidc.client_id, oidc.client_secret)
        data = {
            **data,
            "id_token": tokens.id_token,
            "refresh_token": tokens.refresh_token or data["refresh_token"],
            "expires_at": tokens.expires_at,
            "refresh_at": now + oidc.session_refresh_seconds,
        }
        request.state.session_cookie = _seal(plane, data)  # set by the middleware below
    return authenticator.actor_for(await provider.verify(data["id_token"]))


async def _session(
    request: Request,
    plane: Annotated[ControlPlane, Depends(get_plane)],
    settings: Annotated[ApiSettings, Depends(get_settings)],
    authenticator: Annotated[Authenticator, Depends(get_authenticator)],
) -> Session | None:
    raw = request.cookies.get(SESSION_COOKIE)
    data = _unseal(plane, raw) if raw else None
    if data is not None:
        try:
            if data.get("via") == "oidc":
                actor = await _oidc_actor(request, plane, authenticator, data)
            else:
                async with plane.db.session() as session:
                    actor = await authenticate(session, str(data.get("token", "")))
            return Session(actor, str(data["csrf"]), str(data["via"]))
        except (UnauthenticatedError, KeyError):
            request.state.session_cookie = ""  # gone stale: sign in again
            return None
    if settings.local_actor is not None:
        return Session(system_actor(settings.local_actor), plane.cipher.mac("local"), "local")
    return None


SessionDep = Annotated[Session | None, Depends(_session)]
PlaneDep = Annotated[ControlPlane, Depends(get_plane)]
AuthDep = Annotated[Authenticator, Depends(get_authenticator)]


async def security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """CSP and friends on every page, and a refreshed (or cleared) session cookie."""
    response = await call_next(request)
    if not request.url.path.startswith("/api/"):
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
    cookie = getattr(request.state, "session_cookie", None)
    if cookie:
        _set_session_cookie(response, cookie)
    elif cookie == "":
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _page(template: str, code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(template).render(**context), status_code=code)


def _login() -> RedirectResponse:
    return RedirectResponse("/ui/login", status_code=303)


def _csrf(plane: ControlPlane, session: Session) -> str:
    return session.csrf


def _check_csrf(plane: ControlPlane, session: Session, given: str) -> None:
    if not hmac.compare_digest(session.csrf.encode(), given.encode()):
        raise ForbiddenError("the form's CSRF token is missing or wrong; reload the page")


def _error(exc: FjordError, session: Session | None) -> HTMLResponse:
    return _page("error.html", status_of(exc), error=exc.message, hint=exc.hint, session=session)


def _login_page(plane: ControlPlane, code: int = 200, error: str | None = None) -> HTMLResponse:
    oidc = plane.settings.oidc
    return _page(
        "login.html",
        code,
        error=error,
        session=None,
        provider=oidc.display_name if oidc else None,
    )


@router.get("/ui/login")
async def login_form(plane: PlaneDep) -> HTMLResponse:
    return _login_page(plane)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (parsed here: no python-multipart dependency for four fields)."""
    try:
        text = (await request.body()).decode()
    except UnicodeDecodeError as exc:
        raise InvalidError("the form is not UTF-8") from exc
    parsed = urllib.parse.parse_qs(text, keep_blank_values=True)
    form = {key: values[-1] for key, values in parsed.items()}
    where = nul_at(form)
    if where is not None:
        raise InvalidError(f"form field {where}: contains a NUL character")
    return form


def _signed_in(plane: ControlPlane, data: dict[str, Any]) -> Response:
    response = RedirectResponse("/", status_code=303)
    _set_session_cookie(response, _seal(plane, {**data, "csrf": secrets.token_urlsafe(32)}))
    return response


@router.post("/ui/login")
async def login(plane: PlaneDep, request: Request) -> Response:
    token = (await _form(request)).get("token", "")
    try:
        async with plane.db.session() as session:
            await authenticate(session, token)
    except UnauthenticatedError:
        return _login_page(plane, 401, "that token is not valid")
    return _signed_in(plane, {"via": "token", "token": token})


def _redirect_uri(request: Request) -> str:
    return str(request.base_url).rstrip("/") + CALLBACK_PATH


@router.get("/ui/oidc/start")
async def oidc_start(plane: PlaneDep, authenticator: AuthDep, request: Request) -> Response:
    """Off to the provider with a fresh state, nonce and PKCE verifier (kept, encrypted, in a
    short-lived cookie until the provider sends the browser back)."""
    oidc = plane.settings.oidc
    if authenticator.provider is None or oidc is None:
        return _login_page(plane, 404, "sign-in through an OpenID provider is not configured")
    flow = new_flow()
    try:
        url = await authenticator.provider.authorization_url(
            flow, _redirect_uri(request), oidc.client_id
        )
    except FjordError as exc:
        return _login_page(plane, status_of(exc), exc.message)
    response = RedirectResponse(url, status_code=303)
    sealed = _seal(plane, {"state": flow.state, "nonce": flow.nonce, "verifier": flow.verifier})
    response.set_cookie(
        FLOW_COOKIE, sealed, max_age=FLOW_SECONDS, httponly=True, samesite="lax", path="/ui/oidc"
    )
    return response


@router.get(CALLBACK_PATH)
async def oidc_callback(
    plane: PlaneDep,
    authenticator: AuthDep,
    request: Request,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> Response:
    oidc, provider = plane.settings.oidc, authenticator.provider
    if provider is None or oidc is None:
        return _login_page(plane, 404, "sign-in through an OpenID provider is not configured")
    if error is not None:
        refused = error_description or error
        return _login_page(plane, 401, f"the provider refused the sign-in: {refused}")
    raw = request.cookies.get(FLOW_COOKIE)
    data = _unseal(plane, raw, FLOW_SECONDS) if raw else None
    if data is None or not code or not state:
        return _login_page(plane, 400, "the sign-in expired or was not started here; try again")
    if not hmac.compare_digest(str(data["state"]).encode(), state.encode()):
        return _login_page(plane, 400, "the sign-in's state does not match; try again")
    flow = Flow(state=data["state"], nonce=data["nonce"], verifier=data["verifier"])
    try:
        tokens = await provider.exchange(
            code, flow, _redirect_uri(request), oidc.client_id, oidc.client_secret
        )
        await provider.verify(tokens.id_token, nonce=flow.nonce, audiences=[oidc.client_id])
    except FjordError as exc:
        return _login_page(plane, status_of(exc), exc.message)
    if tokens.refresh_token is None:
        return _login_page(plane, 502, "the provider issued no refresh token")
    response = _signed_in(
        plane,
        {
            "via": "oidc",
            "id_token": tokens.id_token,
            "refresh_token": tokens.refresh_token,
            "expires_at": tokens.expires_at,
            "refresh_at": time.time() + oidc.session_refresh_seconds,
        },
    )
    response.delete_cookie(FLOW_COOKIE, path="/ui/oidc")
    return response


@router.post("/ui/logout")
async def logout() -> Response:
    response = _login()
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


PAGE_SIZE = 100  # apps per overview page: a thousand at once is 2 MB of HTML


@router.get("/")
async def index(
    plane: PlaneDep,
    session: SessionDep,
    q: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """The apps × environments × clusters overview, a page at a time, filtered by ``q``."""
    if session is None:
        return _login()
    search = q.strip()
    rows, total = await queries.matrix_page(
        plane, session.actor, search=search, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE
    )
    async with plane.db.session() as db:
        environments = [e.name for e in await catalog.environments(db)]
    first = (page - 1) * PAGE_SIZE + 1
    return _page(
        "matrix.html",
        rows=rows,
        environments=environments,
        session=session,
        q=search,
        page=page,
        total=total,
        first=first,
        last=first + len(rows) - 1,
        previous_url=_overview_url(search, page - 1) if page > 1 else None,
        next_url=_overview_url(search, page + 1) if page * PAGE_SIZE < total else None,
    )


def _overview_url(search: str, page: int) -> str:
    query = {"q": search, "page": str(page)} if search else {"page": str(page)}
    return "/?" + urllib.parse.urlencode(query)


async def _app_context(plane: ControlPlane, session: Session, org: str, app: str) -> dict[str, Any]:
    """What the app page shows (and its live fragment again, from the same template)."""
    name = f"{org}/{app}"
    status = await queries.app_status(plane, session.actor, name)
    history = await queries.history(plane, session.actor, name, limit=100)
    releases = await queries.releases(plane, session.actor, name)
    infra = await app_infra(plane, session.actor, name)
    # Whether and when a promotion is allowed: for those who may ask (developers and up);
    # a reader still sees the page.
    promotable = {
        env.environment: await promotions.check(plane, session.actor, name, env.environment)
        for env in status.environments[1:]
        if session.actor.can(org, Role.developer)
    }
    environments = [e.environment for e in status.environments]
    allowed = {e: deploys.allowed_actions(session.actor, org, e) for e in environments}
    return {
        "name": name,
        "status": status,
        "promotions": promotable,
        "history": history,
        "releases": releases,
        "infra": infra,
        "allowed": allowed,
        "first_environment": environments[0] if environments else None,
        "running": _running(status),
        "may_approve": lambda d: _may_approve(plane, session, allowed, d),
        "csrf": _csrf(plane, session),
        "session": session,
    }


@router.get("/ui/apps/{org}/{app}")
async def app_page(plane: PlaneDep, session: SessionDep, org: str, app: str) -> Response:
    if session is None:
        return _login()
    try:
        context = await _app_context(plane, session, org, app)
        # Not live (it changes by the day): the page alone reads it.
        context["outcomes"] = await outcomes.app_outcomes(plane, session.actor, f"{org}/{app}")
    except FjordError as exc:
        return _error(exc, session)
    return _page("app.html", **context)


# States that change without anyone acting (the page polls every second); waiting for an
# approver, a delivery window or a halted rollout's owner may take days (every two seconds).
_MOVING = frozenset({states.QUEUED, states.PUBLISHING, states.PROGRESSING, states.ROLLING_OUT})


def _running(status: AppStatusView) -> bool:
    """Whether any environment's latest deployment is on its way by itself."""
    return any(
        e.deployment is not None and e.deployment.state in _MOVING for e in status.environments
    )


@router.get("/ui/apps/{org}/{app}/live")
async def live_fragment(plane: PlaneDep, session: SessionDep, org: str, app: str) -> Response:
    """The app page's live parts (deployment state, each cluster's progress, Flux's messages)
    as server-rendered HTML, which ``static/live.js`` polls and swaps in.

    Polling, not server-sent events: a Flux event lands in whichever replica received it and
    its effect lives only in the database (no change feed between replicas), so an event
    stream would itself poll the database once a second for every open page. A short poll of
    this fragment gives the same latency (about a second) without a long-lived connection per
    page for proxies to cut and shutdowns to wait on, and it stays within the CSP
    (``connect-src 'self'``, a script file, no inline code)."""
    if session is None:
        return Response("sign in again", status_code=401, media_type="text/plain")
    try:
        context = await _app_context(plane, session, org, app)
    except FjordError as exc:
        return Response(exc.message, status_code=status_of(exc), media_type="text/plain")
    return _page("live.html", fragment=True, **context)


def _may_approve(
    plane: ControlPlane, session: Session, allowed: dict[str, frozenset[str]], d: Any
) -> bool:
    """The approve button: an app-admin there who is not the requester where four eyes hold."""
    if "approve" not in allowed.get(d.environment, frozenset()):
        return False
    own = d.requested_by_identity == session.actor.identity
    return not (own and plane.settings.four_eyes(d.environment))


@router.get("/ui/apps/{org}/{app}/diff")
async def diff_page(
    plane: PlaneDep,
    session: SessionDep,
    org: str,
    app: str,
    from_: Annotated[str, Query(alias="from")],
    to: str,
) -> Response:
    if session is None:
        return _login()
    try:
        result = await queries.diff(plane, session.actor, f"{org}/{app}", from_, to)
    except FjordError as exc:
        return _error(exc, session)
    return _page("diff.html", name=f"{org}/{app}", diff=result, session=session)


@router.post("/ui/deployments/{deployment_id}/approve")
async def approve(
    plane: PlaneDep,
    session: SessionDep,
    deployment_id: RowId,
    request: Request,
) -> Response:
    if session is None:
        return _login()
    try:
        _check_csrf(plane, session, (await _form(request)).get("csrf", ""))
        view = await deploys.approve(plane, session.actor, deployment_id)
    except FjordError as exc:
        return _error(exc, session)
    return RedirectResponse(f"/ui/apps/{view.org}/{view.app}", status_code=303)


async def _act(
    plane: ControlPlane,
    session: Session | None,
    request: Request,
    org: str,
    app: str,
    action: Callable[[Actor, dict[str, str]], Awaitable[object]],
) -> Response:
    """A POSTed form: CSRF first, then the service call as the signed-in actor."""
    if session is None:
        return _login()
    try:
        form = await _form(request)
        _check_csrf(plane, session, form.get("csrf", ""))
        await action(session.actor, form)
    except FjordError as exc:
        return _error(exc, session)
    return RedirectResponse(f"/ui/apps/{org}/{app}", status_code=303)


@router.post("/ui/apps/{org}/{app}/deploy")
async def deploy(
    plane: PlaneDep, session: SessionDep, org: str, app: str, request: Request
) -> Response:
    """Deploy a Git ref (or, with ``release``, a built release) to an environment."""

    async def run(actor: Actor, form: dict[str, str]) -> object:
        release = form.get("release", "").strip()
        if release and not release.isdigit():
            raise InvalidError(f"release: expected a release number, got {release!r}")
        return await deploys.deploy(
            plane,
            actor,
            f"{org}/{app}",
            form.get("environment", ""),
            git_ref=form.get("ref", "").strip() or None if not release else None,
            release_id=int(release) if release else None,
        )

    return await _act(plane, session, request, org, app, run)


@router.post("/ui/apps/{org}/{app}/promote")
async def promote(
    plane: PlaneDep, session: SessionDep, org: str, app: str, request: Request
) -> Response:
    async def run(actor: Actor, form: dict[str, str]) -> object:
        return await deploys.promote(plane, actor, f"{org}/{app}", to=form.get("to") or None)

    return await _act(plane, session, request, org, app, run)


@router.post("/ui/apps/{org}/{app}/undeploy")
async def undeploy(
    plane: PlaneDep, session: SessionDep, org: str, app: str, request: Request
) -> Response:
    async def run(actor: Actor, form: dict[str, str]) -> object:
        return await deploys.undeploy(plane, actor, f"{org}/{app}", form.get("environment", ""))

    return await _act(plane, session, request, org, app, run)


_STATIC_TYPES = {"fjord.css": "text/css", "live.js": "text/javascript"}
_STATIC = {name: (Path(__file__).parent / "static" / name).read_bytes() for name in _STATIC_TYPES}


@router.get("/ui/static/{name}")
async def static_file(name: str) -> Response:
    """The stylesheet and the one script (the CSP allows only this origin's)."""
    if name not in _STATIC:
        return Response(f"no static file {name!r}", status_code=404, media_type="text/plain")
    return Response(
        _STATIC[name], media_type=_STATIC_TYPES[name], headers={"Cache-Control": "max-age=300"}
    )


@router.post("/ui/deployments/{deployment_id}/rollout/{action}")
async def rollout_action(
    plane: PlaneDep,
    session: SessionDep,
    deployment_id: RowId,
    action: RolloutAction,
    request: Request,
) -> Response:
    if session is None:
        return _login()
    try:
        _check_csrf(plane, session, (await _form(request)).get("csrf", ""))
        await ROLLOUT_ACTIONS[action](plane, session.actor, deployment_id)
        view = await queries.get_deployment(plane, session.actor, deployment_id)
    except FjordError as exc:
        return _error(exc, session)
    return RedirectResponse(f"/ui/apps/{view.org}/{view.app}", status_code=303)


@router.post("/ui/apps/{org}/{app}/rollback")
async def rollback(
    plane: PlaneDep,
    session: SessionDep,
    org: str,
    app: str,
    request: Request,
) -> Response:
    if session is None:
        return _login()
    form = await _form(request)
    try:
        _check_csrf(plane, session, form.get("csrf", ""))
        await deploys.rollback(
            plane, session.actor, f"{org}/{app}", form.get("environment", ""), to=form.get("to")
        )
    except FjordError as exc:
        return _error(exc, session)
    return RedirectResponse(f"/ui/apps/{org}/{app}", status_code=303)


@router.post("/ui/apps/{org}/{app}/rotate")
async def rotate(
    plane: PlaneDep,
    session: SessionDep,
    org: str,
    app: str,
    request: Request,
) -> Response:
    """New backing-service credentials in one environment (queued like any deployment)."""
    if session is None:
        return _login()
    form = await _form(request)
    try:
        _check_csrf(plane, session, form.get("csrf", ""))
        await deploys.rotate(
            plane,
            session.actor,
            f"{org}/{app}",
            form.get("environment", ""),
            reason="rotate credentials (web UI)",
        )
    except FjordError as exc:
        return _error(exc, session)
    return RedirectResponse(f"/ui/apps/{org}/{app}", status_code=303)
