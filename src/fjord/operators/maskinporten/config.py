"""Operator configuration: where Digdir is and who we are there. Never read from a CR.

Sources, later wins: defaults, environment variables (``FJORD_MASKINPORTEN_API_URL`` …),
options of ``fjord operator run --option maskinporten.api-url=…``. Durations are in seconds.
The supplier client's credentials (its private key) come from a mounted Secret directory in the
documented Maskinporten Secret format (``supplier-dir``) or from a Secret in the cluster
(``supplier-secret=namespace/name``), never from the environment itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fjord.errors import FjordError
from fjord.maskinporten.secret_format import MaskinportenSettings
from fjord.operators.maskinporten.model import KeyPolicy

PREFIX = "FJORD_MASKINPORTEN_"
_ORGNO = re.compile(r"^\d{9}$")
_PLATFORM = re.compile(r"^[A-Za-z0-9._-]{1,63}$")


class ConfigError(FjordError):
    """The operator is missing or has invalid configuration."""


@dataclass(frozen=True)
class OperatorConfig:
    api_base_url: str  # Digdir self-service API, e.g. https://api.samarbeid.digdir.no
    client_orgno: str  # the org whose clients we register (the supplier acts for it)
    platform_id: str  # part of every client's identity; unique per cluster
    supplier_dir: Path | None = None
    supplier_secret: tuple[str, str] | None = None  # (namespace, name)
    policy: KeyPolicy = field(default_factory=KeyPolicy)
    key_size: int = 2048
    concurrency: int = 16  # reconciles in flight at once (bounds Digdir load and CPU)
    request_attempts: int = 5  # per Digdir request, transient failures retried inside it

    @classmethod
    def from_sources(
        cls, options: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None
    ) -> OperatorConfig:
        """``--option maskinporten.api-url=…`` wins over ``FJORD_MASKINPORTEN_API_URL``."""
        env = os.environ if environ is None else environ
        opts = options or {}

        def get(name: str) -> str | None:
            option = "maskinporten." + name.lower().replace("_", "-")
            return opts.get(option, env.get(PREFIX + name))

        def number(name: str, default: float) -> float:
            raw = get(name)
            try:
                return float(raw) if raw is not None else default
            except ValueError as exc:
                raise ConfigError(f"{PREFIX}{name} must be a number, got {raw!r}") from exc

        base = KeyPolicy()
        policy = KeyPolicy(
            resync=number("RESYNC", base.resync),
            max_age=number("KEY_MAX_AGE", base.max_age),
            renew_before=number("KEY_RENEW_BEFORE", base.renew_before),
            stalled_retry=number("STALLED_RETRY", base.stalled_retry),
        )
        secret = get("SUPPLIER_SECRET")
        supplier_dir = get("SUPPLIER_DIR")
        config = cls(
            api_base_url=get("API_URL") or "",
            client_orgno=get("CLIENT_ORGNO") or "",
            platform_id=get("PLATFORM_ID") or "",
            supplier_dir=Path(supplier_dir) if supplier_dir else None,
            supplier_secret=_namespaced(secret) if secret else None,
            policy=policy,
            key_size=int(number("KEY_SIZE", 2048)),
            concurrency=int(number("WORKERS", 16)),
            request_attempts=int(number("REQUEST_ATTEMPTS", 5)),
        )
        return config.checked()

    def checked(self) -> OperatorConfig:
        problems = []
        if not self.api_base_url.startswith(("http://", "https://")):
            problems.append(f"{PREFIX}API_URL must be the Digdir self-service API's base URL")
        if not _ORGNO.match(self.client_orgno):
            problems.append(f"{PREFIX}CLIENT_ORGNO must be a 9-digit orgnr")
        if not _PLATFORM.match(self.platform_id):
            problems.append(f"{PREFIX}PLATFORM_ID must be 1-63 of [A-Za-z0-9._-] (cluster name)")
        if (self.supplier_dir is None) == (self.supplier_secret is None):
            problems.append(f"set exactly one of {PREFIX}SUPPLIER_DIR and {PREFIX}SUPPLIER_SECRET")
        p = self.policy
        if not 0 < p.renew_before < p.lifetime or p.max_age <= 0 or p.resync <= 0:
            problems.append("key policy: need 0 < renew-before < 1 year, max-age > 0, resync > 0")
        if self.concurrency < 1 or self.request_attempts < 1:
            problems.append("concurrency and request attempts must be at least 1")
        if problems:
            raise ConfigError("invalid Maskinporten operator configuration: " + "; ".join(problems))
        return self

    def supplier_from_directory(self) -> MaskinportenSettings:
        if self.supplier_dir is None:
            raise ConfigError("no supplier directory configured")
        return MaskinportenSettings.from_directory(self.supplier_dir)


def _namespaced(value: str) -> tuple[str, str]:
    namespace, _, name = value.partition("/")
    if not namespace or not name:
        raise ConfigError(f"{PREFIX}SUPPLIER_SECRET must be namespace/name, got {value!r}")
    return namespace, name
