"""The control plane: catalogue, dynamic config, releases, deployments and status from Flux.

Open a :class:`ControlPlane` from :class:`ControlSettings`, then call the service functions with
an :class:`Actor` (who is asking, with which roles). The HTTP API, the CLI and the web UI all
call these same functions.

* catalogue: :mod:`.apps` (``create_app``, ``list_apps``, ``get_app``, ``set_config``,
  ``get_config``, ``config_versions``), :mod:`.clusters` (``list_clusters``, ``set_receiver``,
  ``bootstrap``);
* operations: :mod:`.deploys` (``deploy``, ``rotate``, ``promote``, ``approve``, ``rollback``,
  ``undeploy``: each queues a deployment), run by :mod:`.worker` (``Worker``, ``drain``) as the
  declared steps of :mod:`.pipeline`;
* status: :mod:`.events` (``ingest``), :mod:`.progress` (``expire``), :mod:`.queries`
  (``get_deployment``, ``history``, ``releases``, ``app_status``, ``matrix``, ``diff``);
* access: :mod:`.tokens` (``create_token``, ``authenticate``, ``list_tokens``,
  ``revoke_token``), :mod:`.roles`.

The names below are imported on first use (PEP 562): the API client imports only
``fjord.control.views`` (plain pydantic), and a package import that opened SQLAlchemy,
cryptography and the platform config would cost a remote ``fjord`` command about a second.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fjord.control.errors import (
        ConflictError,
        ControlError,
        ForbiddenError,
        InvalidError,
        NotFoundError,
        PreconditionRequiredError,
        StaleVersionError,
        UnauthenticatedError,
    )
    from fjord.control.plane import ControlPlane
    from fjord.control.roles import ALL_ORGS, Actor, Role, system_actor
    from fjord.control.settings import ControlSettings, RegistryCredentials

_HOMES = {
    "fjord.control.errors": (
        "ConflictError",
        "ControlError",
        "ForbiddenError",
        "InvalidError",
        "NotFoundError",
        "PreconditionRequiredError",
        "StaleVersionError",
        "UnauthenticatedError",
    ),
    "fjord.control.plane": ("ControlPlane",),
    "fjord.control.roles": ("ALL_ORGS", "Actor", "Role", "system_actor"),
    "fjord.control.settings": ("ControlSettings", "RegistryCredentials"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "ALL_ORGS",
    "Actor",
    "ConflictError",
    "ControlError",
    "ControlPlane",
    "ControlSettings",
    "ForbiddenError",
    "InvalidError",
    "NotFoundError",
    "PreconditionRequiredError",
    "RegistryCredentials",
    "Role",
    "StaleVersionError",
    "UnauthenticatedError",
    "system_actor",
]


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
