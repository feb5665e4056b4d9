"""The Secret manifest of one service's credentials (pure)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from fjord.operators.credentials import naming
from fjord.operators.credentials.plan import Ensure
from fjord.spec.infra import AppCredentialsSpec


def encode(data: Mapping[str, str]) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}


def decode(data: Mapping[str, str] | None) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (data or {}).items()}


def manifest(
    namespace: str,
    owner: str,
    spec: AppCredentialsSpec,
    ensure: Ensure,
    data: Mapping[str, str],
    annotations: Mapping[str, str],
) -> dict[str, Any]:
    """A managed Secret: our labels, the finalizer, and everything cleanup needs in annotations."""
    notes = {
        naming.KIND: ensure.request.kind,
        naming.SERVICE: ensure.request.key,
        naming.GENERATION: str(ensure.target.generation),
        naming.SPEC_HASH: ensure.request.spec_hash,
        **annotations,
    }
    if spec.protected:
        notes[naming.PROTECTED] = "true"
    if spec.expires_at is not None:
        notes[naming.EXPIRES_AT] = spec.expires_at.isoformat()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": ensure.target.secret_name,
            "namespace": namespace,
            "labels": {
                naming.MANAGED_BY: naming.MANAGER,
                naming.LABEL_OWNER: owner,
                naming.LABEL_PROTECTED: "true" if spec.protected else "false",
            },
            "annotations": notes,
            "finalizers": [naming.FINALIZER],
        },
        "data": encode(data),
    }
