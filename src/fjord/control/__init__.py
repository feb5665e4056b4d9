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
"""

from fjord.control.errors import (
    ConflictError,
    ControlError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    UnauthenticatedError,
)
from fjord.control.plane import ControlPlane
from fjord.control.roles import ALL_ORGS, Actor, Role, system_actor
from fjord.control.settings import ControlSettings, RegistryCredentials

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
    "RegistryCredentials",
    "Role",
    "UnauthenticatedError",
    "system_actor",
]
