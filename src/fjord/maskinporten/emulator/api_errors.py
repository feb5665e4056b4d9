"""Digdir's ``ApiErrorResponse`` body for the self-service API (reference section 2.6)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi.responses import JSONResponse

from fjord.maskinporten.emulator.state import EmulatorState, iso
from fjord.maskinporten.registration import Problem


class ApiError(Exception):
    """A self-service API failure; rendered by ``error_response``."""

    def __init__(
        self,
        status: int,
        error: str,
        description: str,
        problems: Sequence[Problem] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.problems = list(problems)
        self.headers = headers or {}


def bad_request(description: str, problems: Sequence[Problem] = ()) -> ApiError:
    return ApiError(400, "invalid_request", description, problems)


def error_response(state: EmulatorState, exc: ApiError) -> JSONResponse:
    body = {
        "status": exc.status,
        "timestamp": iso(state.clock.now()),
        "correlation_id": state.new_uuid(),
        "error": exc.error,
        "error_description": exc.description,
        "errors": [p.as_api_error("client") for p in exc.problems],
    }
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)
