"""Probes for the kubelet: ``/healthz`` (the process serves requests) and ``/readyz`` (this
replica can do its work: its database answers).

Neither needs a token; neither says more than ``ok`` or the failing check's name, so they are
safe to expose to the cluster. A failed database check is 503 (the Service stops sending this
replica traffic), never 500.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from fjord.api.deps import PlaneDep

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", include_in_schema=False)
async def readyz(plane: PlaneDep) -> JSONResponse:
    try:
        async with plane.db.session() as session:
            await session.execute(text("SELECT 1"))
    except Exception:  # any failure to reach the database means "not ready", by design
        return JSONResponse({"status": "unavailable", "failed": "database"}, status_code=503)
    return JSONResponse({"status": "ok"})
