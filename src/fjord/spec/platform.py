"""Platform config: the orgs, environments, clusters, stores and routing fjord serves.

Without a config file fjord uses :func:`default_platform`, a demo platform on ``fjord.localhost``
with a local directory store, so every command works out of the box.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import Discriminator, Field, field_validator, model_validator

from fjord.spec.access import Access
from fjord.spec.app import ENV_NAME
from fjord.spec.base import DnsLabel, SpecModel

EnvName = Annotated[str, Field(pattern=ENV_NAME)]
DEFAULT_KUBERNETES_VERSION = "1.36"  # what the clusters run (tools/k8s builds the same minor)
DOMAIN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


# OCI distribution's repository path grammar, as a prefix (empty: none).
_REPOSITORY_PREFIX = re.compile(r"([a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*)?")


MAX_SOAK_SECONDS = 7 * 24 * 3600


class Wave(SpecModel):
    """One wave of a rollout: the clusters it moves, chosen by exactly one of name, label or
    share of the environment's clusters (of each org), taken from those no earlier wave took."""

    clusters: list[DnsLabel] = Field(default_factory=list, description="cluster names")
    match_labels: dict[str, str] = Field(
        default_factory=dict, description="clusters whose labels include all of these"
    )
    percent: int | None = Field(
        default=None, ge=1, le=100, description="this share of the clusters, rounded up"
    )
    soak_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SOAK_SECONDS,
        description="how long the wave stays healthy before the next starts; default: the"
        " rollout's soakSeconds",
    )

    @model_validator(mode="after")
    def _one_selector(self) -> Wave:
        given = [bool(self.clusters), bool(self.match_labels), self.percent is not None]
        if sum(given) != 1:
            raise ValueError("a wave names exactly one of clusters, matchLabels or percent")
        return self


class Rollout(SpecModel):
    """How a release moves through an environment's clusters: wave after wave, each one Ready
    (every cluster reports the release healthy) and soaked before the next starts. Clusters no
    wave selects form a last wave of their own."""

    waves: list[Wave] = Field(min_length=1, max_length=50)
    soak_seconds: int = Field(default=0, ge=0, le=MAX_SOAK_SECONDS)
    failure_budget: int = Field(
        default=0, ge=0, description="clusters that may fail before the rollout halts"
    )
    rollback_on_failure: bool = Field(
        default=False,
        description="when it halts, point the clusters that got the release back at what they"
        " ran before",
    )


class DeliveryWindow(SpecModel):
    """When deployments may reach an environment's clusters: from each time ``cron`` fires (in
    ``timeZone``) for ``durationSeconds``. Outside every window a deployment waits, visibly."""

    cron: str = Field(
        min_length=9,
        max_length=200,
        description="five fields (minute hour day month weekday), or six with seconds last,"
        " e.g. '0 9 * * 1-4' for 09:00 Monday to Thursday",
    )
    time_zone: str = Field(default="UTC", description="an IANA time zone, e.g. 'Europe/Oslo'")
    duration_seconds: int = Field(ge=60, le=MAX_SOAK_SECONDS, description="how long it is open")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) not in (5, 6) or not croniter.is_valid(value):
            raise ValueError(
                f"{value!r} is not a cron expression: five fields (minute hour day month"
                " weekday) or six with seconds last, e.g. '0 9 * * 1-4'"
            )
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as 'Europe/Oslo' or 'UTC'"
            ) from None
        return value


class Environment(SpecModel):
    name: EnvName
    domain: str | None = Field(
        default=None,
        pattern=DOMAIN,
        description="apps' base domain here; defaults to the platform's",
    )
    rollout: Rollout | None = Field(
        default=None, description="waves of clusters; default: every cluster at once"
    )
    promotion_soak_seconds: int = Field(
        default=0,
        ge=0,
        le=MAX_SOAK_SECONDS,
        description="a release is promoted here only after it has been healthy this long in the"
        " environment before",
    )
    delivery_windows: list[DeliveryWindow] = Field(
        default_factory=list,
        max_length=50,
        description="when deployments may start reaching the clusters; none: any time",
    )


class Cluster(SpecModel):
    name: DnsLabel
    labels: dict[str, str] = Field(
        default_factory=dict, description="for rollout waves' matchLabels"
    )


class LocalStore(SpecModel):
    kind: Literal["local"] = "local"
    path: str | None = Field(
        default=None, description="directory; defaults to fjord's data directory"
    )


class OciStore(SpecModel):
    kind: Literal["oci"]
    registry: str = Field(min_length=1, description="host[:port] of the registry")
    repository_prefix: str = Field(
        default="",
        description="prepended to '{org}/apps/{app}' and '{org}/sync/{env}', e.g. 'platform/fjord'"
        " (lowercase OCI path components, no leading or trailing '/')",
        json_schema_extra={"pattern": f"^{_REPOSITORY_PREFIX.pattern}$"},
    )

    @field_validator("repository_prefix")
    @classmethod
    def _oci_path(cls, value: str) -> str:
        if not _REPOSITORY_PREFIX.fullmatch(value):
            raise ValueError(
                f"{value!r} is not an OCI repository path: use lowercase components of letters,"
                " digits and '.', '_' or '-' inside, separated by single '/', with no leading or"
                " trailing '/' (e.g. 'platform/fjord')"
            )
        return value

    plain_http: bool = False


class AzureStore(SpecModel):
    """An Azure Blob container of the org's own; its clusters read it with Flux Bucket sources
    and a SAS for this container only, so no two orgs may share one."""

    kind: Literal["azure"]
    account_url: str = Field(
        min_length=1,
        pattern=r"^https?://[^\s/?#]+(/[^\s/?#]+)?/?$",
        description="the Blob service URL: https://<account>.blob.core.windows.net, or"
        " path-style http://127.0.0.1:10000/devstoreaccount1 (Azurite)",
    )
    container: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


Store = Annotated[LocalStore | OciStore | AzureStore, Discriminator("kind")]


class Org(SpecModel):
    store: Store = LocalStore()
    clusters: dict[EnvName, list[Cluster]] = Field(
        default_factory=dict, description="the org's clusters in each environment"
    )


class TraefikRouting(SpecModel):
    """Traefik IngressRoute on ``{org}.apps.{domain}`` under ``/{org}/{app}`` (Altinn's layout)."""

    flavour: Literal["traefik"] = "traefik"
    entry_points: list[str] = Field(default_factory=lambda: ["web"], min_length=1)
    controller_namespace: DnsLabel = "traefik"


class GatewayRouting(SpecModel):
    """Gateway API HTTPRoute attached to a shared Gateway."""

    flavour: Literal["gateway"]
    gateway_name: DnsLabel = "fjord"
    gateway_namespace: DnsLabel = "gateway-system"
    controller_namespace: DnsLabel = "gateway-system"


class IngressRouting(SpecModel):
    """Plain networking.k8s.io Ingress for any ingress controller."""

    flavour: Literal["ingress"]
    ingress_class_name: str | None = "nginx"
    controller_namespace: DnsLabel = "ingress-nginx"


Routing = Annotated[TraefikRouting | GatewayRouting | IngressRouting, Discriminator("flavour")]


PodSecurityLevel = Literal["restricted", "baseline", "privileged"]


class PodSecurityException(SpecModel):
    """A relaxation of Pod Security for one org or one app, with the reason (audited)."""

    org: DnsLabel
    app: DnsLabel | None = Field(default=None, description="one app; default: the whole org")
    level: Literal["baseline", "privileged"]
    reason: str = Field(
        min_length=10,
        max_length=500,
        description="why this app may run with less isolation; kept in the audit log",
    )


class Security(SpecModel):
    """What apps may ship: every app namespace enforces Pod Security ``restricted`` unless an
    exception here says otherwise, and Services stay inside the cluster unless allowed."""

    pod_security_exceptions: list[PodSecurityException] = Field(default_factory=list)
    allow_node_port_services: bool = False
    allow_load_balancer_services: bool = False
    allow_external_ips: bool = False

    @model_validator(mode="after")
    def _unique(self) -> Security:
        targets = [(e.org, e.app) for e in self.pod_security_exceptions]
        if len(set(targets)) != len(targets):
            raise ValueError("podSecurityExceptions: one exception per org or org+app")
        return self

    def pod_security_level(self, org: str, app: str) -> PodSecurityLevel:
        """The app's exception, else its org's, else ``restricted``."""
        by_target = {(e.org, e.app): e.level for e in self.pod_security_exceptions}
        return by_target.get((org, app)) or by_target.get((org, None)) or "restricted"


class PlatformConfig(SpecModel):
    domain: str = Field(pattern=DOMAIN)
    environments: list[Environment] = Field(
        min_length=1, description="in promotion order: a release moves left to right"
    )
    orgs: dict[DnsLabel, Org] = Field(min_length=1)
    routing: Routing = TraefikRouting()
    security: Security = Security()
    access: Access = Access()
    kubernetes_version: str = Field(
        default=DEFAULT_KUBERNETES_VERSION,
        pattern=r"^[0-9]+\.[0-9]+$",
        description="the clusters' Kubernetes minor version, e.g. '1.36'; releases are checked"
        " against its API schemas (fjord ships them per version)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> PlatformConfig:
        names = [e.name for e in self.environments]
        if len(set(names)) != len(names):
            raise ValueError(f"environment names must be unique: {names}")
        for org, config in self.orgs.items():
            unknown = sorted(set(config.clusters) - set(names))
            if unknown:
                raise ValueError(f"orgs.{org}.clusters: unknown environment(s) {unknown}")
        for index, environment in enumerate(self.environments):
            self._check_waves(index, environment)
        for exception in self.security.pod_security_exceptions:
            if exception.org not in self.orgs:
                raise ValueError(f"security.podSecurityExceptions: unknown org {exception.org!r}")
        containers: dict[tuple[str, str], str] = {}
        for org, config in self.orgs.items():
            if isinstance(config.store, AzureStore):
                where = (config.store.account_url.rstrip("/"), config.store.container)
                if where in containers:
                    raise ValueError(
                        f"orgs.{org}.store.container: {where[1]!r} is already org"
                        f" {containers[where]!r}'s; each org needs a container of its own (its"
                        " clusters' read credential covers the whole container)"
                    )
                containers[where] = org
        return self

    def _check_waves(self, index: int, environment: Environment) -> None:
        if environment.rollout is None:
            return
        known = {
            c.name for org in self.orgs.values() for c in org.clusters.get(environment.name, [])
        }
        for number, wave in enumerate(environment.rollout.waves):
            unknown = sorted(set(wave.clusters) - known)
            if unknown:
                raise ValueError(
                    f"environments[{index}].rollout.waves[{number}].clusters: no cluster named"
                    f" {', '.join(unknown)} in {environment.name} (known: {sorted(known)})"
                )

    @property
    def environment_names(self) -> list[str]:
        return [e.name for e in self.environments]

    def environment(self, name: str) -> Environment:
        for environment in self.environments:
            if environment.name == name:
                return environment
        raise KeyError(name)

    def app_host(self, org: str, environment: str) -> str:
        """Where an org's apps are served in an environment: ``{org}.apps.{domain}``."""
        return f"{org}.apps.{self.environment(environment).domain or self.domain}"


def default_platform() -> PlatformConfig:
    """The embedded demo platform: orgs ttd and digdir, tt02 → production, local store."""
    environments = [
        Environment(name="tt02", domain="tt02.fjord.localhost"),
        Environment(name="production"),
    ]
    clusters = {"tt02": [Cluster(name="tt02-1")], "production": [Cluster(name="production-1")]}
    return PlatformConfig(
        domain="fjord.localhost",
        environments=environments,
        orgs={"ttd": Org(clusters=clusters), "digdir": Org(clusters=clusters)},
    )
