"""Roles from the identity provider's groups: the platform config's ``access`` applied to the
groups an ID token lists (pure; see :mod:`fjord.spec.access` for the defaults)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from fjord.control.roles import ALL_ORGS, Role
from fjord.spec.access import Access


@dataclass
class Grants:
    orgs: dict[str, Role] = field(default_factory=dict)
    environments: dict[tuple[str, str], Role] = field(default_factory=dict)

    def add(self, org: str, role: Role, environment: str | None = None) -> None:
        if environment is None:
            current = self.orgs.get(org)
            if current is None or role.rank > current.rank:
                self.orgs[org] = role
            return
        key = (org, environment)
        found = self.environments.get(key)
        if found is None or role.rank > found.rank:
            self.environments[key] = role


def grants_from_groups(groups: Iterable[str], access: Access, environments: list[str]) -> Grants:
    """The roles ``groups`` give under ``access``; ``environments`` are the platform's (a deploy
    team for an unknown environment gives nothing)."""
    known = {e.lower(): e for e in environments}
    grants = Grants()
    for group in groups:
        lowered = group.lower()
        org, sep, team = lowered.partition(access.separator)
        if not sep:
            if access.platform_org is not None and org == access.platform_org.lower():
                grants.add(ALL_ORGS, Role.platform_admin)
            if access.org_member_role is not None:
                grants.add(org, Role(access.org_member_role))
        elif access.owners_team is not None and team == access.owners_team.lower():
            grants.add(org, Role.app_admin)
        elif access.deploy_team_prefix and team.startswith(access.deploy_team_prefix.lower()):
            environment = known.get(team.removeprefix(access.deploy_team_prefix.lower()))
            if environment is not None:
                grants.add(org, Role.app_admin, environment)
        for rule in access.rules:
            if rule.group.lower() == lowered:
                grants.add(rule.org, Role(rule.role), rule.environment)
    return grants
