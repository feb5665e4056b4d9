"""Names, labels and annotations of everything the credentials operator creates.

Rotation puts the credential generation into the Secret name: generation 1 uses the name from
the spec unchanged (the name the renderer mounts, ``{app}-pg-<db>`` / ``{app}-redis``), later
generations append ``-g<N>``. External users are named after the Secret (namespace included), so
each Secret has exactly one user and a retried reconcile finds the same one again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

GROUP = "fjord.dev"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "fjord-credentials"
FINALIZER = f"{GROUP}/credentials"
LABEL_OWNER = f"{GROUP}/app-credentials"
LABEL_PROTECTED = f"{GROUP}/protected"
ROTATE = f"{GROUP}/rotate"

KIND = f"{GROUP}/credentials-kind"
SERVICE = f"{GROUP}/credentials-service"
GENERATION = f"{GROUP}/credentials-generation"
SPEC_HASH = f"{GROUP}/spec-hash"
PROTECTED = f"{GROUP}/protected"
EXPIRES_AT = f"{GROUP}/expires-at"
PG_ROLE = f"{GROUP}/postgresql-role"
PG_DATABASE = f"{GROUP}/postgresql-database"
PG_OWNER = f"{GROUP}/postgresql-owner"
PG_RETENTION = f"{GROUP}/postgresql-database-retention"
REDIS_USER = f"{GROUP}/redis-user"

PG_MAX = 63  # NAMEDATALEN - 1


def secret_name(base: str, generation: int) -> str:
    """``base`` for generation 1, ``base-g<N>`` afterwards (shortened with a hash if needed)."""
    if generation <= 1:
        return base
    suffix = f"-g{generation}"
    if len(base) + len(suffix) <= 253:
        return base + suffix
    return _shorten(base, 253 - len(suffix), "-") + suffix


def _digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:10]


def _shorten(text: str, limit: int, sep: str) -> str:
    if len(text) <= limit:
        return text
    digest = _digest(text)
    return f"{text[: limit - len(digest) - 1]}{sep}{digest}"


def _pg_ident(text: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", text.lower())


def pg_database(namespace: str, app: str, database: str) -> str:
    """One database per (namespace, AppCredentials, database name), shared by generations."""
    return _shorten(_pg_ident(f"{namespace}_{app}_{database}"), PG_MAX, "_")


def pg_owner(database: str) -> str:
    """The NOLOGIN group role that owns the database and the objects in it."""
    return _shorten(database, PG_MAX - 6, "_") + "_owner"


def pg_role(namespace: str, secret: str) -> str:
    """The login role of one Secret (one generation)."""
    return _shorten("fjord_" + _pg_ident(f"{namespace}_{secret}"), PG_MAX, "_")


def redis_user(namespace: str, secret: str) -> str:
    # No ":" in the name: it would split a redis://user:password@ URL in the wrong place.
    return f"fjord.{namespace}.{secret}"


def owner_of(secret: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(namespace, name)`` of the AppCredentials a managed Secret belongs to (its label)."""
    meta = secret.get("metadata") or {}
    owner = (meta.get("labels") or {}).get(LABEL_OWNER)
    return (str(meta.get("namespace")), str(owner)) if owner else None
