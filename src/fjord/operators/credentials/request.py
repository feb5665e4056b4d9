"""What an AppCredentials asks for, one :class:`ServiceRequest` per Secret (pure)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fjord.spec.infra import AppCredentialsSpec

POSTGRESQL = "postgresql"
REDIS = "redis"


@dataclass(frozen=True)
class ServiceRequest:
    """One Secret's worth of credentials: ``key`` is stable (``postgresql/<db>``, ``redis``)."""

    key: str
    kind: str
    base_secret: str
    settings: Mapping[str, Any]

    @property
    def spec_hash(self) -> str:
        text = json.dumps({"kind": self.kind, **self.settings}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def requests(spec: AppCredentialsSpec) -> list[ServiceRequest]:
    found: list[ServiceRequest] = []
    if spec.postgresql is not None:
        for db in spec.postgresql.databases:
            settings: dict[str, Any] = {"database": db.name}
            if spec.postgresql.deletion_policy == "Delete":
                # Only when set: an unset policy (Retain) keeps the spec hash of Secrets written
                # before the field existed, so they are not rewritten.
                settings["deletionPolicy"] = "Delete"
            found.append(
                ServiceRequest(f"{POSTGRESQL}/{db.name}", POSTGRESQL, db.secret_name, settings)
            )
    if spec.redis is not None:
        found.append(
            ServiceRequest(
                REDIS,
                REDIS,
                spec.redis.secret_name,
                {"keyPrefix": spec.redis.key_prefix, "commands": list(spec.redis.commands)},
            )
        )
    return found
