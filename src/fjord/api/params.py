"""Bounded path and query parameters shared by the JSON API and the web UI.

Ids and ``before`` cursors must be positive and within the id columns' range; anything else is
a 422 naming the parameter (a larger number used to reach the database and fail there as a 500).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from fjord.api.models import MAX_ROW_ID

RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="a row id")]
Cursor = Annotated[
    int | None, Query(ge=1, le=MAX_ROW_ID, description="an id: only entries older than it")
]
ConfigVersionNumber = Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)]
