"""Errors → HTTP statuses with one JSON body shape: ``{"error": …, "hint": …, …details}``.

Service errors map by class. FastAPI's own request validation (path, query, header, body)
answers 422 in the same shape, naming each parameter (``path parameter deployment_id: …``), and
keeps FastAPI's ``detail`` list for programs that read it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from fjord.api.limits import TOO_LARGE_HINT, too_large_message
from fjord.control.errors import (
    ConflictError,
    ControlError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    PreconditionRequiredError,
    UnauthenticatedError,
    UnavailableError,
)
from fjord.errors import FjordError

STATUS: dict[type[ControlError], int] = {
    UnauthenticatedError: 401,
    ForbiddenError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    PreconditionRequiredError: 428,
    InvalidError: 422,
    UnavailableError: 503,
}

_WHERE = {"path": "path parameter", "query": "query parameter", "header": "header"}


def status_of(exc: FjordError) -> int:
    for kind, status in STATUS.items():
        if isinstance(exc, kind):
            return status
    return 400


def error_body(message: str, hint: str | None, **details: Any) -> dict[str, Any]:
    return {"error": message, "hint": hint, **details}


def describe_validation(errors: Any) -> str:
    """``path parameter deployment_id: Input should be …; body field values: …``."""
    parts = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        where = _WHERE.get(location[0], "body field") if location else "request"
        name = ".".join(location[1:])
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        # A check of the whole body names the field in its message.
        parts.append(f"{where} {name}: {message}" if name else f"body: {message}")
    return "; ".join(parts) or "the request is invalid"


def install(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FjordError)
        status = status_of(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        details = exc.details if isinstance(exc, ControlError) else {}
        return JSONResponse(
            error_body(exc.message, exc.hint, **details), status_code=status, headers=headers
        )

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        body = error_body(
            describe_validation(errors),
            "see the API reference at /docs for the parameter's type and range",
            detail=jsonable_encoder(errors),
        )
        return JSONResponse(body, status_code=422)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 413:
            limit = request.app.state.settings.max_body_bytes
            body = error_body(too_large_message(limit), TOO_LARGE_HINT)
        else:
            body = error_body(str(exc.detail), None, detail=exc.detail)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(FjordError, handle)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)

    async def too_deep(request: Request, exc: Exception) -> JSONResponse:
        # json.loads recurses per nesting level: a small body of "[[[[…" exhausts the stack.
        body = error_body("the request body nests too deeply", "send flatter JSON")
        return JSONResponse(body, status_code=400)

    app.add_exception_handler(RecursionError, too_deep)
