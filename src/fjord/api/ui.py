"""The web UI: server-rendered pages, no JavaScript build.

Sign-in stores the API token in an HttpOnly, SameSite=Strict cookie. Every POST form carries a
CSRF token (a MAC of the session's token under the server's secret), checked before anything
changes; together with SameSite=Strict a cross-site form can neither read nor forge it.
"""

from __future__ import annotations

import hmac
import urllib.parse
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fjord.api.deps import TOKEN_COOKIE, get_plane, get_settings
from fjord.api.errors import status_of
from fjord.api.models import nul_at
from fjord.api.params import RowId
from fjord.api.settings import ApiSettings
from fjord.control import (
    Actor,
    ControlPlane,
    catalog,
    deploys,
    promotions,
    queries,
    system_actor,
)
from fjord.control.errors import ForbiddenError, InvalidError, UnauthenticatedError
from fjord.control.rollouts import ROLLOUT_ACTIONS, RolloutAction
from fjord.control.tokens import authenticate
from fjord.errors import FjordError

router = APIRouter(include_in_schema=False)
templates = jinja2.Environment(
    loader=jinja2.PackageLoader("fjord.api", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def short(digest: str | None) -> str:
    return digest.removeprefix("sha256:")[:12] if digest else "–"


templates.filters["short"] = short


class Session:
    def __init__(self, actor: Actor, token: str) -> None:
        self.actor = actor
        self.token = token


async def _session(
    request: Request,
    plane: Annotated[ControlPlane, Depends(get_plane)],
    settings: Annotated[ApiSettings, Depends(get_settings)],
) -> Session | None:
    token = request.cookies.get(TOKEN_COOKIE)
    if token:
        try:
            async with plane.db.session() as session:
                return Session(await authenticate(session, token), token)
        except UnauthenticatedError:
            return None
    if settings.local_actor is not None:
        return Session(system_actor(settings.local_actor), "local")
    return None


SessionDep = Annotated[Session | None, Depends(_session)]
PlaneDep = Annotated[ControlPlane, Depends(get_plane)]


def _page(template: str, code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(template).render(**context), status_code=code)


def _login() -> RedirectResponse:
    return RedirectResponse("/ui/login", status_code=303)


def _csrf(plane: ControlPlane, session: Session) -> str:
    return plane.cipher.mac(f"csrf:{session.token}")


def _check_csrf(plane: ControlPlane, session: Session, given: str) -> None:
    if not hmac.compare_digest(_csrf(plane, session), given):
        raise ForbiddenError("the form's CSRF token is missing or wrong; reload the page")


def _error(exc: FjordError, session: Session | None) -> HTMLResponse:
    return _page("error.html", status_of(exc), error=exc.message, hint=exc.hint, session=session)


@router.get("/ui/login")
async def login_form() -> HTMLResponse:
    return _page("login.html", error=None, session=None)


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


@router.post("/ui/login")
async def login(plane: PlaneDep, request: Request) -> Response:
    token = (await _form(request)).get("token", "")
    try:
        async with plane.db.session() as session:
            await authenticate(session, token)
    except UnauthenticatedError:
        return _page("login.html", 401, error="that token is not valid", session=None)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/")
    return response


@router.post("/ui/logout")
async def logout() -> Response:
    response = _login()
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


@router.get("/")
async def index(plane: PlaneDep, session: SessionDep) -> Response:
    if session is None:
        return _login()
    rows = await queries.matrix(plane, session.actor)
    async with plane.db.session() as db:
        environments = [e.name for e in await catalog.environments(db)]
    return _page("matrix.html", rows=rows, environments=environments, session=session)


@router.get("/ui/apps/{org}/{app}")
async def app_page(plane: PlaneDep, session: SessionDep, org: str, app: str) -> Response:
    if session is None:
        return _login()
    name = f"{org}/{app}"
    try:
        status = await queries.app_status(plane, session.actor, name)
        history = await queries.history(plane, session.actor, name, limit=100)
        releases = await queries.releases(plane, session.actor, name)
        promotable = {
            env.environment: await promotions.check(plane, session.actor, name, env.environment)
            for env in status.environments[1:]
        }
    except FjordError as exc:
        return _error(exc, session)
    return _page(
        "app.html",
        name=name,
        status=status,
        promotions=promotable,
        history=history,
        releases=releases,
        csrf=_csrf(plane, session),
        session=session,
    )


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
