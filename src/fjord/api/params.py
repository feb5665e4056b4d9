"""Bounded path and query parameters shared by the JSON API and the web UI.

Ids and ``before`` cursors must be positive and within the id columns' range; anything else is
a 422 naming the parameter (a larger number used to reach the database and fail there as a 500).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request

from fjord.api.models import MAX_ROW_ID
from fjord.control.errors import InvalidError

RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="a row id")]
Cursor = Annotated[
    int | None, Query(ge=1, le=MAX_ROW_ID, description="an id: only entries older than it")
]
ConfigVersionNumber = Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)]


def reject_nul(request: Request) -> None:
    """An app-wide dependency: no NUL character in a path or query parameter (``%00``).

    PostgreSQL refuses NUL in every text value, so such a name would fail in the database as a
    500; no fjord name or value can contain one.
    """
    for kind, params in (("path", request.path_params), ("query", request.query_params)):
        for name, value in params.items():
            if "\x00" in str(value):
                raise InvalidError(f"{kind} parameter {name}: contains a NUL character")
