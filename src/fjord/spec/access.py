"""Who gets which role from the identity provider's groups (``access`` in the platform config).

The defaults follow Altinn's Gitea naming. Gitea lists a user's orgs and org teams in the ID
token's ``groups`` claim as ``org`` and ``org:team`` (team names lowercased), so with the
defaults:

* ``ttd`` (a member of org ttd) reads ttd's apps;
* ``ttd:deploy-production`` deploys, rolls back, undeploys and approves in production;
* ``ttd:owners`` is app-admin in every environment of ttd;
* any member of the platform org (``fjord``) is platform-admin.

``rules`` add grants for other group names (other providers, other team names).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fjord.spec.base import SpecModel

RoleName = Literal["reader", "developer", "app-admin", "platform-admin"]


class GroupRule(SpecModel):
    """Members of ``group`` get ``role`` in ``org`` (``*``: every org), optionally only in one
    environment."""

    group: str = Field(min_length=1, max_length=300, description="as in the groups claim")
    org: str = Field(pattern=r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$", max_length=63)
    environment: str | None = Field(default=None, max_length=63)
    role: RoleName


class Access(SpecModel):
    org_member_role: RoleName | None = Field(
        default="reader", description="what a member of an org (group ``org``) may; null: none"
    )
    owners_team: str | None = Field(
        default="owners", description="``<org>:<team>`` members are app-admin in the org"
    )
    deploy_team_prefix: str | None = Field(
        default="deploy-",
        description="``<org>:<prefix><environment>`` members deploy, roll back, undeploy and"
        " approve in that environment",
    )
    platform_org: str | None = Field(
        default="fjord", description="members of this org are platform-admin everywhere"
    )
    separator: str = Field(default=":", min_length=1, description="between org and team")
    rules: list[GroupRule] = Field(default_factory=list)
