"""Service errors → HTTP statuses with a JSON body ``{"error": …, "hint": …}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from fjord.control.errors import (
    ConflictError,
    ControlError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    UnauthenticatedError,
)
from fjord.errors import FjordError

STATUS: dict[type[ControlError], int] = {
    UnauthenticatedError: 401,
    ForbiddenError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    InvalidError: 422,
}


def status_of(exc: FjordError) -> int:
    for kind, status in STATUS.items():
        if isinstance(exc, kind):
            return status
    return 400


def install(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FjordError)
        status = status_of(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(
            {"error": exc.message, "hint": exc.hint}, status_code=status, headers=headers
        )

    app.add_exception_handler(FjordError, handle)

    async def too_deep(request: Request, exc: Exception) -> JSONResponse:
        # json.loads recurses per nesting level: a small body of "[[[[…" exhausts the stack.
        return JSONResponse(
            {"error": "the request body nests too deeply", "hint": "send flatter JSON"},
            status_code=400,
        )

    app.add_exception_handler(RecursionError, too_deep)
