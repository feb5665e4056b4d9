"""fjord's HTTP API and server-rendered web UI over the control plane's services.

``create_app`` and ``ApiSettings`` are imported on first use (PEP 562), so the API client
(:mod:`fjord.api.client`) does not load FastAPI and the control plane's services.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fjord.api.app import create_app
    from fjord.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from fjord.api.app import create_app

        globals()[name] = create_app
        return create_app
    if name == "ApiSettings":
        from fjord.api.settings import ApiSettings

        globals()[name] = ApiSettings
        return ApiSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
