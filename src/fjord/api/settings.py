"""Settings of one API application instance."""

from __future__ import annotations

from dataclasses import dataclass, field

from fjord.control import ControlSettings

# Dynamic config and Flux events are a few KiB; nothing the API takes comes near 1 MiB.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ApiSettings:
    control: ControlSettings = field(default_factory=ControlSettings)
    # In-process use by the CLI only: requests without a token act as this local administrator.
    # Never set for a served API.
    local_actor: str | None = None
    # How often unfinished deployments are checked against their deadline.
    sweep_seconds: float = 2.0
    # Run this replica's deployment worker (claims queued work, continues work of replicas that
    # stopped). The in-process CLI runs its own and drains it before it exits.
    run_worker: bool = True
    # Larger request bodies get 413 on every route (``limits.BodySizeLimit``).
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
