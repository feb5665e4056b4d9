"""Request bodies of the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from fjord.control.roles import Role


class CreateApp(BaseModel):
    name: str = Field(description="org/app")
    source: str = Field(description="the app's source directory on the control plane's host")


class SetConfig(BaseModel):
    values: dict[str, Any]
    reason: str = Field(min_length=1, description="why the config changes (audited)")


class DeployRequest(BaseModel):
    environment: str
    idempotency_key: str | None = None


class PromoteRequest(BaseModel):
    to: str
    idempotency_key: str | None = None


class RollbackRequest(BaseModel):
    environment: str
    to: str | None = Field(default=None, description="a release digest (or unique prefix)")
    idempotency_key: str | None = None


class RotateRequest(BaseModel):
    environment: str
    reason: str = Field(
        default="rotate credentials", min_length=1, description="why (audited, kept with config)"
    )
    idempotency_key: str | None = None


class UndeployRequest(BaseModel):
    environment: str
    idempotency_key: str | None = None


class ReceiverRequest(BaseModel):
    url: str | None


class BootstrapRequest(BaseModel):
    org: str
    environment: str
    cluster: str


class CreateToken(BaseModel):
    name: str
    grants: dict[str, Role] = Field(description='org (or "*") → role')


class IngestResponse(BaseModel):
    recorded: bool
    app: str | None


class WhoAmI(BaseModel):
    name: str
    grants: dict[str, str]
