"""Where the control plane keeps its state and how it reaches the outside world.

Everything has an embedded default: a data directory (``$FJORD_DATA_DIR`` or
``~/.local/share/fjord``) holding the SQLite database, the platform signing key and the local
artifact store; the demo platform from :func:`fjord.spec.default_platform`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fjord.spec import PlatformConfig, default_platform, load_platform

# Flux's own pattern for ``spec.interval`` (metav1.Duration limited to ms, s, m and h).
_FLUX_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")


def _switch(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "on", "yes"):
        return True
    if lowered in ("0", "false", "off", "no"):
        return False
    raise ValueError(f"{name}={value!r} is not a switch (use on or off)")


def default_data_dir() -> Path:
    configured = os.environ.get("FJORD_DATA_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fjord"


_NUMBERS = {
    "FJORD_LEASE_SECONDS": "lease_seconds",
    "FJORD_POLL_SECONDS": "poll_seconds",
    "FJORD_RECEIVER_TIMEOUT": "receiver_timeout_seconds",
}


def _positive(variable: str, text: str, unit: str = "seconds (e.g. 30)") -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ValueError(f"{variable}={text!r} is not a positive number of {unit}")
    return value


@dataclass(frozen=True)
class RegistryCredentials:
    username: str
    password: str


DEFAULT_SCOPES = ("openid", "profile", "email", "groups")


@dataclass(frozen=True)
class OidcSettings:
    """Sign-in through an OpenID provider (Gitea locally; any standard one by configuration).

    The web UI uses the authorization code flow with PKCE as the confidential client
    ``client_id``; the CLI (``fjord login``) as the public client ``cli_client_id`` through a
    loopback redirect. API bearer tokens are the provider's ID tokens, verified against its JWKS
    with an audience of either client.
    """

    issuer: str
    client_id: str
    # None: the UI is a public client too (PKCE only), e.g. the local Gitea's, whose loopback
    # redirects then match on any port.
    client_secret: str | None = None
    cli_client_id: str | None = None
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    # The ID token claim that lists the caller's groups (Gitea: ``org`` and ``org:team``).
    groups_claim: str = "groups"
    # A signed-in browser session asks the provider for fresh tokens (and so fresh groups)
    # after this long: a team membership change takes effect within it.
    session_refresh_seconds: float = 300.0
    # What the UI's sign-in button says.
    display_name: str = "Gitea"

    @property
    def audiences(self) -> tuple[str, ...]:
        return (self.client_id, self.cli_client_id) if self.cli_client_id else (self.client_id,)


def _oidc_from_env(env: Mapping[str, str]) -> OidcSettings | None:
    issuer = env.get("FJORD_OIDC_ISSUER", "").strip().rstrip("/")
    if not issuer:
        return None
    if not env.get("FJORD_OIDC_CLIENT_ID"):
        raise ValueError(
            "FJORD_OIDC_ISSUER is set but FJORD_OIDC_CLIENT_ID not: set the client the provider"
            " registered for fjord's web UI"
        )
    kwargs: dict[str, object] = {}
    if env.get("FJORD_OIDC_CLIENT_SECRET"):
        kwargs["client_secret"] = env["FJORD_OIDC_CLIENT_SECRET"].strip()
    if env.get("FJORD_OIDC_CLI_CLIENT_ID"):
        kwargs["cli_client_id"] = env["FJORD_OIDC_CLI_CLIENT_ID"].strip()
    if env.get("FJORD_OIDC_SCOPES"):
        scopes = tuple(env["FJORD_OIDC_SCOPES"].replace(",", " ").split())
        if "openid" not in scopes:
            raise ValueError(f"FJORD_OIDC_SCOPES={env['FJORD_OIDC_SCOPES']!r} lacks openid")
        kwargs["scopes"] = scopes
    if env.get("FJORD_OIDC_GROUPS_CLAIM"):
        kwargs["groups_claim"] = env["FJORD_OIDC_GROUPS_CLAIM"].strip()
    if env.get("FJORD_OIDC_SESSION_REFRESH"):
        kwargs["session_refresh_seconds"] = _positive(
            "FJORD_OIDC_SESSION_REFRESH", env["FJORD_OIDC_SESSION_REFRESH"]
        )
    if env.get("FJORD_OIDC_DISPLAY_NAME"):
        kwargs["display_name"] = env["FJORD_OIDC_DISPLAY_NAME"].strip()
    return OidcSettings(
        issuer=issuer,
        client_id=env["FJORD_OIDC_CLIENT_ID"].strip(),
        **kwargs,  # type: ignore[arg-type]
    )


def _names(text: str) -> frozenset[str]:
    return frozenset(n.strip() for n in text.split(",") if n.strip())


@dataclass(frozen=True)
class ControlSettings:
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None  # None: SQLite in data_dir
    platform: PlatformConfig = field(default_factory=default_platform)
    # The URL at which clusters reach this control plane (Flux notification Provider address).
    public_url: str = "http://127.0.0.1:8650"
    deploy_timeout_seconds: float = 600.0
    # How long a replica's claims and locks live without a heartbeat (renewed every third of
    # it): a replica that dies loses its work to another one within this time.
    lease_seconds: float = 30.0
    # Deployments one replica works on at once (of different app+environments), and how often
    # an idle worker looks for queued work that other replicas accepted.
    workers: int = 4
    poll_seconds: float = 1.0
    # A Flux Receiver that does not answer within this costs only this (best effort).
    receiver_timeout_seconds: float = 10.0
    # Environments where promotion needs an app-admin's approval; None: the last environment.
    approval_environments: frozenset[str] | None = None
    # Environments where the approver must be another person than the requester; None: the
    # environments that need approval.
    four_eyes_environments: frozenset[str] | None = None
    # Sign-in through an OpenID provider; None: API tokens only.
    oidc: OidcSettings | None = None
    # Per registry host (``host:port``): credentials for pushing and for clusters to pull.
    registry_credentials: Mapping[str, RegistryCredentials] = field(default_factory=dict)
    # Per Azure Storage account URL (as orgs' ``account_url`` name it): the account key fjord
    # writes with. Clusters never get it: they read with a container SAS (read + list) signed
    # by it, valid for ``azure_sas_days``.
    azure_keys: Mapping[str, str] = field(default_factory=dict)
    azure_sas_days: float = 365.0
    # Flux intervals written into sync roots and bootstrap manifests.
    flux_interval: str = "10m"
    kustomization_timeout: str = "5m"
    # Gitea, where apps' repositories live: fjord registers webhooks and posts commit statuses
    # with this token (it needs admin rights on the apps' repositories). None: neither happens;
    # fetching uses each org's own read credential either way.
    gitea_url: str | None = None
    gitea_token: str | None = None
    # The signature migration window (docs/signing.md): while on, every artifact also gets a
    # legacy `.sig` signed with the separate legacy key, and clusters trust that key too.
    legacy_signatures: bool = True
    # Outbound notifications: tries per event (backoff from the first wait, doubling, as in
    # fjord.retry), and how many events in a row may fail before a hook is disabled.
    notification_attempts: int = 5
    notification_first_wait_seconds: float = 2.0
    notification_disable_after: int = 3
    notification_timeout_seconds: float = 10.0

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'fjord.db'}"

    @property
    def signing_key_path(self) -> Path:
        return self.data_dir / "cosign.key"

    @property
    def legacy_key_path(self) -> Path:
        """The key legacy `.sig` signatures are made with (never the bundle key, see above)."""
        return self.data_dir / "cosign-legacy.key"

    @property
    def secret_key_path(self) -> Path:
        return self.data_dir / "secret.key"

    @property
    def local_store_dir(self) -> Path:
        return self.data_dir / "store"

    @property
    def mirrors_dir(self) -> Path:
        """One bare Git mirror per app repository (see :mod:`fjord.sources`)."""
        return self.data_dir / "mirrors"

    def rolls_out(self, environment: str) -> bool:
        """Whether the environment moves its clusters in waves (each following its own tag)."""
        try:
            return self.platform.environment(environment).rollout is not None
        except KeyError:
            return False

    def needs_approval(self, environment: str) -> bool:
        if self.approval_environments is not None:
            return environment in self.approval_environments
        return environment == self.platform.environment_names[-1]

    def four_eyes(self, environment: str) -> bool:
        if self.four_eyes_environments is not None:
            return environment in self.four_eyes_environments
        return self.needs_approval(environment)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ControlSettings:
        """Settings from ``FJORD_*`` variables; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, object] = {}
        if env.get("FJORD_DATA_DIR"):
            kwargs["data_dir"] = Path(env["FJORD_DATA_DIR"])
        if env.get("FJORD_DATABASE_URL"):
            kwargs["database_url"] = env["FJORD_DATABASE_URL"]
        if env.get("FJORD_PLATFORM"):
            kwargs["platform"] = load_platform(Path(env["FJORD_PLATFORM"]))
        if env.get("FJORD_PUBLIC_URL"):
            kwargs["public_url"] = env["FJORD_PUBLIC_URL"].rstrip("/")
        if env.get("FJORD_DEPLOY_TIMEOUT"):
            kwargs["deploy_timeout_seconds"] = float(env["FJORD_DEPLOY_TIMEOUT"])
        for variable, name in _NUMBERS.items():
            if env.get(variable):
                kwargs[name] = _positive(variable, env[variable])
        if env.get("FJORD_WORKERS"):
            kwargs["workers"] = int(
                _positive("FJORD_WORKERS", env["FJORD_WORKERS"], "workers (e.g. 4)")
            )
        if env.get("FJORD_FLUX_INTERVAL"):
            interval = env["FJORD_FLUX_INTERVAL"].strip()
            if not _FLUX_DURATION.match(interval):
                raise ValueError(
                    f"FJORD_FLUX_INTERVAL={interval!r} is not a Flux interval (e.g. 30s, 5m, 1h)"
                )
            kwargs["flux_interval"] = interval
        if env.get("FJORD_KUSTOMIZATION_TIMEOUT"):
            timeout = env["FJORD_KUSTOMIZATION_TIMEOUT"].strip()
            if not _FLUX_DURATION.match(timeout):
                raise ValueError(
                    f"FJORD_KUSTOMIZATION_TIMEOUT={timeout!r} is not a Flux duration (e.g. 60s, 5m)"
                )
            kwargs["kustomization_timeout"] = timeout
        if env.get("FJORD_GITEA_URL"):
            kwargs["gitea_url"] = env["FJORD_GITEA_URL"].rstrip("/")
        if env.get("FJORD_GITEA_TOKEN"):
            kwargs["gitea_token"] = env["FJORD_GITEA_TOKEN"]
        if env.get("FJORD_LEGACY_SIGNATURES"):
            kwargs["legacy_signatures"] = _switch(
                "FJORD_LEGACY_SIGNATURES", env["FJORD_LEGACY_SIGNATURES"]
            )
        if env.get("FJORD_APPROVAL_ENVIRONMENTS"):
            kwargs["approval_environments"] = _names(env["FJORD_APPROVAL_ENVIRONMENTS"])
        if "FJORD_FOUR_EYES_ENVIRONMENTS" in env:  # empty: nowhere
            kwargs["four_eyes_environments"] = _names(env["FJORD_FOUR_EYES_ENVIRONMENTS"])
        kwargs["oidc"] = _oidc_from_env(env)
        if env.get("FJORD_REGISTRY_AUTH"):
            # host=user:password[,host=user:password]
            creds = {}
            for item in env["FJORD_REGISTRY_AUTH"].split(","):
                host, _, userpass = item.partition("=")
                user, _, password = userpass.partition(":")
                creds[host.strip()] = RegistryCredentials(user, password)
            kwargs["registry_credentials"] = creds
        if env.get("FJORD_AZURE_KEYS"):
            # account_url=key[,account_url=key] (account keys are base64: no ',')
            keys = {}
            for item in env["FJORD_AZURE_KEYS"].split(","):
                url, sep, key = item.partition("=")
                if not sep or not key:
                    raise ValueError(
                        f"FJORD_AZURE_KEYS: {item.split('=')[0]!r} has no key"
                        " (use account_url=key[,account_url=key])"
                    )
                keys[url.strip().rstrip("/")] = key.strip()
            kwargs["azure_keys"] = keys
        if env.get("FJORD_AZURE_SAS_DAYS"):
            kwargs["azure_sas_days"] = _positive(
                "FJORD_AZURE_SAS_DAYS", env["FJORD_AZURE_SAS_DAYS"], "days (e.g. 365)"
            )
        return cls(**kwargs)  # type: ignore[arg-type]
