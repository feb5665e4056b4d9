"""The app spec, ``fjord.yaml``: what a service owner writes in the app's repository.

Per-environment overrides (``environments: {tt02: {...}}``) are partial app specs layered onto
the base; they are kept as plain mappings here and validated by merging (see ``overlay``), so an
override may say ``replicas: {max: 2}`` without repeating the rest.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fjord.spec.base import DnsLabel, Quantity, SpecModel, quantity_value

ENV_NAME = r"^[a-z][a-z0-9-]{0,30}$"
ENV_VAR_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
SCOPE = r"^[A-Za-z0-9][A-Za-z0-9:._/-]*$"
# Short enough for volume names; no trailing "_", which would end the Secret name in "-".
DATABASE_NAME = r"^[a-z]([a-z0-9_]{0,38}[a-z0-9])?$"
REDIS_COMMAND = r"^[+-]@?[a-z][a-z0-9|_-]*$"

DEFAULT_REDIS_COMMANDS = ("+@all", "-@dangerous")
"""ACL rules an app gets when its spec names none: everything except admin/dangerous commands."""


class ResourceList(SpecModel):
    cpu: Quantity | None = None
    memory: Quantity | None = None


class Resources(SpecModel):
    """Container requests and limits. No CPU limit by default: throttling hurts latency."""

    requests: ResourceList = ResourceList(cpu="100m", memory="128Mi")
    limits: ResourceList = ResourceList(memory="256Mi")

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> Resources:
        for name in ("cpu", "memory"):
            request, limit = getattr(self.requests, name), getattr(self.limits, name)
            if request and limit and quantity_value(limit) < quantity_value(request):
                raise ValueError(f"limits.{name} ({limit}) is below requests.{name} ({request})")
        return self


class Replicas(SpecModel):
    """Horizontal autoscaling bounds; ``min == max`` means a fixed replica count (no HPA)."""

    min: int = Field(default=2, ge=0, le=1000)
    max: int = Field(default=6, ge=0, le=1000, description="min == max == 0 scales to zero")
    cpu_target: int = Field(
        default=75, ge=1, le=100, description="target average CPU utilisation, %"
    )

    @field_validator("max")
    @classmethod
    def _max_not_below_min(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min")
        if isinstance(low, int) and value < low:
            raise ValueError(f"must be >= replicas.min ({low})")
        return value


class Probe(SpecModel):
    path: str = Field(pattern=r"^/", max_length=1024)
    port: int | None = Field(default=None, ge=1, le=65535, description="defaults to the app's port")
    period_seconds: int = Field(default=10, ge=1, le=3600)


class Probes(SpecModel):
    liveness: Probe | None = None
    readiness: Probe | None = None


class SecretKeyRef(SpecModel):
    name: DnsLabel
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)
    optional: bool = False


class ValueFrom(SpecModel):
    secret_key_ref: SecretKeyRef


class SecretEnv(SpecModel):
    """An environment variable read from a Secret that already exists in the app's namespace."""

    value_from: ValueFrom


def _plain_env(value: object) -> object:
    # YAML reads `DEBUG: true` as a bool and `PORT: 80` as an int; the variable is text anyway.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _env_kind(value: object) -> str:
    return "secret" if isinstance(value, dict | SecretEnv) else "plain"


# A callable discriminator picks one branch, so a bad value yields one error, not one per branch.
EnvValue = Annotated[
    Annotated[str, BeforeValidator(_plain_env), Tag("plain")] | Annotated[SecretEnv, Tag("secret")],
    Discriminator(_env_kind),
]
EnvVarName = Annotated[str, Field(pattern=ENV_VAR_NAME, max_length=253)]


class Routing(SpecModel):
    """Public HTTP route. The default path is ``/{org}/{app}`` (Altinn's layout)."""

    enabled: bool = True
    path: str | None = Field(default=None, pattern=r"^/[-a-zA-Z0-9._~/]*$", max_length=256)


class Maskinporten(SpecModel):
    scopes: list[Annotated[str, Field(pattern=SCOPE, max_length=255)]] = Field(min_length=1)

    @field_validator("scopes")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return _no_duplicates(value, "scope")


class Database(SpecModel):
    name: str = Field(pattern=DATABASE_NAME)


class PostgreSQL(SpecModel):
    databases: list[Database] = Field(min_length=1, max_length=10)

    @field_validator("databases")
    @classmethod
    def _unique(cls, value: list[Database]) -> list[Database]:
        _no_duplicates([d.name for d in value], "database")
        return value


class Redis(SpecModel):
    key_prefix: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9:._-]+$",
        max_length=128,
        description="defaults to '{app}:'",
    )
    commands: list[Annotated[str, Field(pattern=REDIS_COMMAND)]] = Field(
        default_factory=lambda: list(DEFAULT_REDIS_COMMANDS), min_length=1
    )


class Chart(SpecModel):
    """The app's own Helm chart, relative to the directory holding ``fjord.yaml``."""

    path: str = Field(min_length=1, max_length=256)
    values: dict[str, Any] = Field(default_factory=dict)

    @field_validator("path")
    @classmethod
    def _inside_repo(cls, value: str) -> str:
        parts = value.replace("\\", "/").split("/")
        if value.startswith("/") or ".." in parts:
            raise ValueError("must be a relative path inside the app's repository")
        return value


class AppSpec(SpecModel):
    """``fjord.yaml``: one app of one org, with everything fjord needs to release it."""

    org: DnsLabel
    app: DnsLabel
    image: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9._/:@-]*$",
        max_length=512,
        description="container image; required unless the app brings its own chart",
    )
    port: int = Field(default=8080, ge=1, le=65535)
    resources: Resources = Resources()
    replicas: Replicas = Replicas()
    probes: Probes = Probes()
    env: dict[EnvVarName, EnvValue] = Field(default_factory=dict)
    routing: Routing = Routing()
    maskinporten: Maskinporten | None = None
    postgresql: PostgreSQL | None = None
    redis: Redis | None = None
    chart: Chart | None = None
    credentials_rotation: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="raise it (e.g. with `fjord rotate`) to give the app new PostgreSQL and Redis"
        " credentials in its next release: the release mounts new Secrets (`…-r<n>`), while the"
        " old ones stay as long as a ReplicaSet uses them, so a rollback still finds them",
    )
    environments: dict[Annotated[str, Field(pattern=ENV_NAME)], dict[str, Any]] = Field(
        default_factory=dict,
        description="per-environment partial overrides of this spec (maps merge, lists replace)",
    )

    @model_validator(mode="after")
    def _image_or_chart(self) -> AppSpec:
        if self.image is None and self.chart is None:
            raise ValueError("`image` is required unless the app brings its own `chart`")
        if len(self.org) + len(self.app) + 1 > 63:
            raise ValueError("org and app together are too long for a namespace name (63)")
        return self

    @property
    def namespace(self) -> str:
        """Every app lives in its own namespace, ``{org}-{app}``."""
        return f"{self.org}-{self.app}"


def _no_duplicates(values: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value)
    return values
