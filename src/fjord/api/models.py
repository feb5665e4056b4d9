"""Request and response bodies of the HTTP API, and the bounds of its parameters."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from fjord.control.roles import Role

# Row ids, cursors and config versions are INTEGER columns (int4 in PostgreSQL): a larger number
# can name nothing, and passed on it would fail in the database instead of in validation.
MAX_ROW_ID = 2**31 - 1
# The widths of the columns request strings are stored in (control/models.py).
KEY_LENGTH = 200
URL_LENGTH = 500


class CreateApp(BaseModel):
    name: str = Field(description="org/app")
    source: str = Field(description="the app's source directory on the control plane's host")


class SetConfig(BaseModel):
    values: dict[str, Any]
    reason: str = Field(min_length=1, description="why the config changes (audited)")
    expected_version: int | None = Field(
        default=None,
        ge=0,
        le=MAX_ROW_ID,
        description="the version this change is based on (0: none yet); or the If-Match header",
    )


class DeployRequest(BaseModel):
    environment: str
    idempotency_key: str | None = Field(default=None, max_length=KEY_LENGTH)


class PromoteRequest(BaseModel):
    to: str
    idempotency_key: str | None = Field(default=None, max_length=KEY_LENGTH)


class RollbackRequest(BaseModel):
    environment: str
    to: str | None = Field(default=None, description="a release digest (or unique prefix)")
    idempotency_key: str | None = Field(default=None, max_length=KEY_LENGTH)


class UndeployRequest(BaseModel):
    environment: str
    idempotency_key: str | None = Field(default=None, max_length=KEY_LENGTH)


class ReceiverRequest(BaseModel):
    url: str | None = Field(max_length=URL_LENGTH)


class BootstrapRequest(BaseModel):
    org: str
    environment: str
    cluster: str


class CreateToken(BaseModel):
    name: str = Field(min_length=1, max_length=KEY_LENGTH)
    grants: dict[str, Role] = Field(description='org (or "*") → role')


class IngestResponse(BaseModel):
    recorded: bool
    app: str | None


class WhoAmI(BaseModel):
    name: str
    grants: dict[str, str]
