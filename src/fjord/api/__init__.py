"""fjord's HTTP API and server-rendered web UI over the control plane's services."""

from fjord.api.app import create_app
from fjord.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
