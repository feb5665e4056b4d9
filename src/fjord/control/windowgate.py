"""Delivery windows as people see and bend them: an environment's window now, and a
platform-admin's override that lets one deployment through outside it (audited).

The gate itself is the pipeline's ``window`` step (``pipeline.window``); the arithmetic is
``windows.py``.
"""

from __future__ import annotations

from fjord.control import audit, catalog, states, windows
from fjord.control.errors import ConflictError, ForbiddenError, NotFoundError
from fjord.control.models import App, Deployment, Environment, Org, TimelineEntry, utcnow
from fjord.control.plane import ControlPlane
from fjord.control.roles import Actor, Role
from fjord.control.views import WindowView


async def environment_window(plane: ControlPlane, actor: Actor, environment: str) -> WindowView:
    async with plane.db.session() as session:
        await catalog.environment(session, environment)  # 404 naming the known ones
    configured = plane.settings.platform.environment(environment).delivery_windows
    found = windows.status(configured, utcnow())
    return WindowView(
        environment=environment,
        open=found.open,
        closes_at=found.closes_at,
        opens_at=found.opens_at,
        time_zone=found.time_zone,
        windows=[w.model_dump(by_alias=True) for w in configured],
    )


async def override(plane: ControlPlane, actor: Actor, deployment_id: int) -> None:
    """Let the deployment through its environment's delivery window (platform-admin)."""
    async with plane.db.session() as session:
        deployment = await session.get(Deployment, deployment_id, with_for_update=True)
        if deployment is None:
            raise NotFoundError(f"no deployment {deployment_id}")
        app = await session.get(App, deployment.app_id)
        env = await session.get(Environment, deployment.environment_id)
        assert app is not None and env is not None  # noqa: PT018
        org = await session.get(Org, app.org_id)
        assert org is not None
        if actor.role_in(org.name) is None:
            raise NotFoundError(f"no deployment {deployment_id}")
        if not actor.can(org.name, Role.platform_admin):
            raise ForbiddenError(
                "overriding a delivery window needs the platform-admin role",
                hint=f"ask a platform admin, or wait until {env.name}'s window opens",
            )
        if deployment.state not in states.ACTIVE:
            raise ConflictError(f"deployment {deployment_id} is {deployment.state} already")
        deployment.window_override_by = actor.name
        if deployment.state == states.WAITING_WINDOW:
            deployment.not_before = utcnow()
        deployment.updated_at = utcnow()
        session.add(
            TimelineEntry(
                deployment_id=deployment_id,
                reason="window-override",
                message=f"{actor.name} let it through outside {env.name}'s delivery window",
            )
        )
        audit.record(
            session,
            actor,
            "deployment.window_override",
            f"{org.name}/{app.name}@{env.name}",
            org=org.name,
            deployment=deployment_id,
        )
    plane.work_queued()
