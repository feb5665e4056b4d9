"""Request and response bodies of the HTTP API, and the bounds of its parameters."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from fjord.control.roles import Role

# Row ids, cursors and config versions are INTEGER columns (int4 in PostgreSQL): a larger number
# can name nothing, and passed on it would fail in the database instead of in validation.
MAX_ROW_ID = 2**31 - 1
# The widths of the columns request strings are stored in (control/models.py).
KEY_LENGTH = 200
URL_LENGTH = 500
SOURCE_LENGTH = 1000
REF_LENGTH = 200
IMAGE_LENGTH = 512


def nul_at(value: Any, where: str = "") -> str | None:
    """Where a NUL character hides in JSON-like data (``values.common.env.A``), if anywhere."""
    if isinstance(value, str):
        return where or "(the value)" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}.{key}" if where else str(key)
            if "\x00" in str(key):
                return inner
            found = nul_at(item, inner)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_at(item, f"{where}[{index}]")
            if found is not None:
                return found
    return None


class RequestBody(BaseModel):
    """Every request body: no NUL character anywhere (PostgreSQL cannot store one, so it would
    fail in the database as a 500 instead of here as a 422 naming the field)."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        where = nul_at(data)
        if where is not None:
            raise ValueError(f"{where} contains a NUL character")
        return data


class CreateApp(RequestBody):
    name: str = Field(description="org/app")
    repo: str = Field(
        max_length=SOURCE_LENGTH,
        description="clone URL of the app's Git repository (http or https)",
    )
    tag_pattern: str | None = Field(
        default="v*",
        max_length=REF_LENGTH,
        description="pushed tags matching this glob build a release; null: none",
    )
    deploy_branch: str | None = Field(
        default=None,
        max_length=REF_LENGTH,
        description="a push to this branch deploys its head to deploy_environment",
    )
    deploy_environment: str | None = Field(default=None, max_length=63)


class SetCredential(RequestBody):
    token: str = Field(
        min_length=1, max_length=1000, description="a Gitea token that can read the org's repos"
    )


class CreateRelease(RequestBody):
    ref: str = Field(min_length=1, max_length=REF_LENGTH, description="tag, branch or commit")
    image: str | None = Field(
        default=None, max_length=IMAGE_LENGTH, description="the image to run (default: the spec's)"
    )


class SetConfig(RequestBody):
    values: dict[str, Any]
    reason: str = Field(min_length=1, description="why the config changes (audited)")
    expected_version: int | None = Field(
        default=None,
        ge=0,
        le=MAX_ROW_ID,
        description="the version this change is based on (0: none yet); or the If-Match header",
    )


class DeployRequest(RequestBody):
    environment: str
    ref: str | None = Field(
        default=None, max_length=REF_LENGTH, description="build from this tag, branch or commit"
    )
    release: int | None = Field(
        default=None, ge=1, le=MAX_ROW_ID, description="or deploy this release (its id)"
    )
    image: str | None = Field(
        default=None, max_length=IMAGE_LENGTH, description="with ref: the image to run"
    )
    idempotency_key: str | None = Field(default=None, max_length=KEY_LENGTH)


class PromoteRequest(RequestBody):
    to: str
    idempotency_key: str | None = Field(default=None, max_length=KEY_LENGTH)


class RollbackRequest(RequestBody):
    environment: str
    to: str | None = Field(default=None, description="a release digest (or unique prefix)")
    idempotency_key: str | None = Field(default=None, max_length=KEY_LENGTH)


class RotateRequest(RequestBody):
    environment: str
    reason: str = Field(
        default="rotate credentials",
        min_length=1,
        max_length=1000,
        description="why (audited, kept with config)",
    )
    idempotency_key: str | None = Field(default=None, max_length=KEY_LENGTH)


class UndeployRequest(RequestBody):
    environment: str
    idempotency_key: str | None = Field(default=None, max_length=KEY_LENGTH)


class ReceiverRequest(RequestBody):
    url: str | None = Field(max_length=URL_LENGTH)


class NotificationHookRequest(RequestBody):
    url: str = Field(max_length=URL_LENGTH)
    app: str | None = Field(default=None, max_length=63, description="one app; default: all")
    format: Literal["cloudevents", "slack"] = "cloudevents"


class BootstrapRequest(RequestBody):
    org: str
    environment: str
    cluster: str


class CreateToken(RequestBody):
    name: str = Field(min_length=1, max_length=KEY_LENGTH)
    grants: dict[str, Role] = Field(description='org (or "*") → role')
    expires_in_days: float | None = Field(
        default=None, gt=0, le=3650, description="valid this long; default: until revoked"
    )
    environments: list[str] | None = Field(
        default=None, max_length=50, description="act only in these environments"
    )


class IngestResponse(BaseModel):
    recorded: bool
    app: str | None


class WhoAmI(BaseModel):
    name: str
    grants: dict[str, str]  # org (or org/environment) → role
    subject: str | None = None
    provider: str | None = None


class AuthConfig(BaseModel):
    """The OpenID provider and public client ``fjord login`` uses; nulls: API tokens only."""

    issuer: str | None
    client_id: str | None
    scopes: list[str]
