"""Who may do what: roles per org (and per environment), and the caller of a service operation.

Roles are ordered; each includes the ones below it:

* ``reader``: read the org's apps, status, history and releases;
* ``developer``: also register apps, set dynamic config, build releases, deploy, promote, rotate;
* ``app-admin``: also approve promotions, roll back, undeploy, set the org's Git credential;
* ``platform-admin``: also clusters, bootstrap and API tokens.

A grant holds in a whole org (``grants``) or in one environment of it (``environment_grants``,
e.g. from a ``Deploy-<env>`` team): an environment grant counts at full rank for operations in
that environment and at most as ``developer`` for the org's environment-less operations (a
deployer somewhere may prepare work, what runs where stays per environment).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from fjord.control.errors import ForbiddenError

ALL_ORGS = "*"
LOCAL_PROVIDER = "fjord"  # the provider of system actors and fjt_ tokens


class Role(StrEnum):
    reader = "reader"
    developer = "developer"
    app_admin = "app-admin"
    platform_admin = "platform-admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


def _cap(role: Role, ceiling: Role) -> Role:
    return role if role.rank <= ceiling.rank else ceiling


@dataclass(frozen=True)
class Actor:
    """The caller: a display name, a stable identity (``provider`` and ``subject``) for the audit
    log and four-eyes checks, and its roles per org (or ``*``) and per org and environment."""

    name: str
    grants: Mapping[str, Role] = field(default_factory=dict)
    environment_grants: Mapping[tuple[str, str], Role] = field(default_factory=dict)
    subject: str | None = None
    provider: str = LOCAL_PROVIDER

    @property
    def identity(self) -> str:
        """Who this is, independent of the display name: ``provider#subject``."""
        return f"{self.provider}#{self.subject or self.name}"

    def role_in(self, org: str, environment: str | None = None) -> Role | None:
        roles = [r for o, r in self.grants.items() if o in (org, ALL_ORGS)]
        for (o, env), role in self.environment_grants.items():
            if o not in (org, ALL_ORGS):
                continue
            if environment is None:
                roles.append(_cap(role, Role.developer))
            elif env == environment:
                roles.append(role)
        return max(roles, key=lambda r: r.rank) if roles else None

    def can(self, org: str, role: Role, environment: str | None = None) -> bool:
        mine = self.role_in(org, environment)
        return mine is not None and mine.rank >= role.rank

    def require(self, org: str, role: Role = Role.reader, environment: str | None = None) -> None:
        if not self.can(org, role, environment):
            where = f" in {environment}" if environment else ""
            # The same message whether the org exists or not: no probing other tenants.
            raise ForbiddenError(f"{self.name} needs the {role} role in org {org!r}{where}")

    def readable_orgs(self, orgs: list[str]) -> list[str]:
        return [o for o in orgs if self.role_in(o) is not None]

    def describe(self) -> dict[str, str]:
        """Grants as text, ``org`` or ``org/environment`` → role (whoami, the UI)."""
        described = {o: r.value for o, r in self.grants.items()}
        for (o, env), role in self.environment_grants.items():
            described[f"{o}/{env}"] = role.value
        return described


def system_actor(name: str = "fjord") -> Actor:
    """The control plane itself (recovery, timeouts) and local administrators."""
    return Actor(name=name, grants={ALL_ORGS: Role.platform_admin}, subject=f"system:{name}")
