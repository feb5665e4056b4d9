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
    # Per registry host (``host:port``): credentials for pushing and for clusters to pull.
    registry_credentials: Mapping[str, RegistryCredentials] = field(default_factory=dict)
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
        if env.get("FJORD_REGISTRY_AUTH"):
            # host=user:password[,host=user:password]
            creds = {}
            for item in env["FJORD_REGISTRY_AUTH"].split(","):
                host, _, userpass = item.partition("=")
                user, _, password = userpass.partition(":")
                creds[host.strip()] = RegistryCredentials(user, password)
            kwargs["registry_credentials"] = creds
        return cls(**kwargs)  # type: ignore[arg-type]
