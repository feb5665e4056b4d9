"""The app factory: ``create_app(settings)`` builds a FastAPI app with the API and the web UI.

The control plane is opened in the app's lifespan (migrations, catalogue), this replica's
deployment worker starts (it claims queued work and continues work of replicas that stopped) and
a background task fails deployments whose deadline passed. Tests and the in-process CLI
may pass an already open plane instead; then its lifecycle stays with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI

from fjord import __version__
from fjord.api import errors, health, metrics, routes, ui
from fjord.api.limits import BodySizeLimit
from fjord.api.params import reject_nul
from fjord.api.settings import ApiSettings
from fjord.control import ControlPlane, faults, statuses
from fjord.control.progress import expire
from fjord.control.worker import Worker

log = logging.getLogger(__name__)


async def _sweep(plane: ControlPlane, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            async with plane.db.session() as session:
                await expire(session)
        except Exception:  # keep sweeping; a database hiccup must not stop timeouts for good
            log.warning("deadline sweep failed", exc_info=True)
        try:
            await statuses.report(plane)
        except Exception:  # Gitea or the database away: report on a later sweep
            log.warning("commit status sweep failed", exc_info=True)


def create_app(settings: ApiSettings, plane: ControlPlane | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = plane is None
        opened = plane or await ControlPlane.open(settings.control)
        app.state.plane = opened
        worker = Worker(opened, hook=faults.from_env()) if settings.run_worker else None
        if worker is not None:
            opened.work_queued = worker.wake
            await worker.start()
        sweeper = asyncio.create_task(_sweep(opened, settings.sweep_seconds))
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            if worker is not None:
                await worker.stop()  # gives its claims up: another replica continues at once
            if owned:
                await opened.close()

    app = FastAPI(
        title="fjord",
        version=__version__,
        description="fjord's control plane: apps, config, releases, deployments, status.",
        lifespan=lifespan,
        dependencies=[Depends(reject_nul)],
    )
    app.state.settings = settings
    app.state.metrics = metrics.ApiMetrics()
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(metrics.RequestTimer)
    if plane is not None:
        app.state.plane = plane  # usable without running the lifespan (in-process transport)
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(ui.router)
    app.include_router(metrics.router)
    app.include_router(health.router)
    return app
