"""Who may do what: roles per org, and the caller of a service operation.

Roles are ordered; each includes the ones below it:

* ``developer``: read, register apps, set dynamic config, deploy, request promotion;
* ``app-admin``: also approve promotions, roll back, undeploy;
* ``platform-admin``: also clusters, bootstrap and API tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from fjord.control.errors import ForbiddenError

ALL_ORGS = "*"


class Role(StrEnum):
    developer = "developer"
    app_admin = "app-admin"
    platform_admin = "platform-admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


@dataclass(frozen=True)
class Actor:
    """The caller: a name for the audit log and its roles, per org or for all orgs (``*``)."""

    name: str
    grants: Mapping[str, Role] = field(default_factory=dict)

    def role_in(self, org: str) -> Role | None:
        roles = [r for o, r in self.grants.items() if o in (org, ALL_ORGS)]
        return max(roles, key=lambda r: r.rank) if roles else None

    def can(self, org: str, role: Role) -> bool:
        mine = self.role_in(org)
        return mine is not None and mine.rank >= role.rank

    def require(self, org: str, role: Role = Role.developer) -> None:
        if not self.can(org, role):
            # The same message whether the org exists or not: no probing other tenants.
            raise ForbiddenError(f"{self.name} needs the {role} role in org {org!r}")

    def readable_orgs(self, orgs: list[str]) -> list[str]:
        return [o for o in orgs if self.role_in(o) is not None]


def system_actor(name: str = "fjord") -> Actor:
    """The control plane itself (recovery, timeouts) and local administrators."""
    return Actor(name=name, grants={ALL_ORGS: Role.platform_admin})
