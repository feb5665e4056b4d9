"""The interface of a backing-service handler (aivenator's ``Apply``/``Cleanup``).

``apply`` creates or reuses the external user of one Secret and returns the Secret's data plus
the annotations ``cleanup`` will need; ``cleanup`` removes the user using only those annotations
(the AppCredentials may be long gone when a Secret is finalized). Both are idempotent. Handlers
raise :class:`~fjord.operators.common.errors.TransientError` or ``PermanentError`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from fjord.operators.credentials.request import ServiceRequest


@dataclass(frozen=True)
class Issued:
    data: dict[str, str]
    annotations: dict[str, str]


class ServiceHandler(Protocol):
    kind: str

    async def apply(
        self,
        namespace: str,
        owner: str,
        secret: str,
        request: ServiceRequest,
        password: str | None,
    ) -> Issued:
        """Create or update the user of ``secret`` (keeping ``password`` when given)."""
        ...

    async def present(self, annotations: Mapping[str, str]) -> bool:
        """Whether the user recorded in a Secret's annotations exists."""
        ...

    async def cleanup(self, annotations: Mapping[str, str]) -> None:
        """Remove the user recorded in the annotations (no-op for other kinds / already gone)."""
        ...

    async def close(self) -> None: ...
