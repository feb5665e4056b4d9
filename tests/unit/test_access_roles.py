"""Roles from groups (Altinn's Gitea team names by default), grants per environment, scoped
API tokens' roles and the OIDC settings from the environment."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from test_control_support import ADMIN, opened, settings

from fjord.control import tokens
from fjord.control.errors import ForbiddenError, InvalidError, UnauthenticatedError
from fjord.control.models import ApiToken, utcnow
from fjord.control.roles import ALL_ORGS, Actor, Role
from fjord.control.settings import ControlSettings
from fjord.control.teams import grants_from_groups
from fjord.spec.access import Access, GroupRule

ENVS = ["tt02", "production"]


def actor_of(*groups: str, access: Access | None = None) -> Actor:
    grants = grants_from_groups(groups, access or Access(), ENVS)
    return Actor("someone", grants.orgs, grants.environments)


def test_gitea_teams_map_to_altinn_roles() -> None:
    member = actor_of("ttd")
    assert member.role_in("ttd") == Role.reader
    assert member.role_in("digdir") is None

    deployer = actor_of("ttd", "ttd:deploy-production")
    assert deployer.can("ttd", Role.app_admin, "production")
    assert not deployer.can("ttd", Role.developer, "tt02")
    # An environment grant counts as developer at most for the org's environment-less work.
    assert deployer.role_in("ttd") == Role.developer

    owner = actor_of("ttd", "ttd:owners")
    assert owner.can("ttd", Role.app_admin, "production")
    assert owner.can("ttd", Role.app_admin)
    assert not owner.can("digdir", Role.reader)

    platform = actor_of("fjord")
    assert platform.can("digdir", Role.platform_admin)
    assert platform.grants[ALL_ORGS] == Role.platform_admin


def test_unknown_environments_and_other_teams_give_nothing() -> None:
    actor = actor_of("ttd:deploy-nowhere", "ttd:readers")
    assert actor.role_in("ttd") is None


def test_rules_add_grants_for_other_group_names() -> None:
    access = Access(
        rules=[GroupRule(group="Release-Managers", org="ttd", environment="tt02", role="app-admin")]
    )
    actor = actor_of("release-managers", access=access)
    assert actor.can("ttd", Role.app_admin, "tt02")
    assert not actor.can("ttd", Role.reader, "production")


def test_refusals_name_the_environment() -> None:
    actor = actor_of("ttd:deploy-tt02")
    with pytest.raises(ForbiddenError, match=r"app-admin role in org 'ttd' in production"):
        actor.require("ttd", Role.app_admin, "production")


def test_oidc_settings_from_the_environment() -> None:
    settings = ControlSettings.from_env(
        {
            "FJORD_OIDC_ISSUER": "https://gitea.example/",
            "FJORD_OIDC_CLIENT_ID": "ui",
            "FJORD_OIDC_CLI_CLIENT_ID": "cli",
            "FJORD_OIDC_SCOPES": "openid,groups",
            "FJORD_FOUR_EYES_ENVIRONMENTS": "tt02,production",
        }
    )
    assert settings.oidc is not None
    assert settings.oidc.issuer == "https://gitea.example"
    assert settings.oidc.audiences == ("ui", "cli")
    assert settings.oidc.scopes == ("openid", "groups")
    assert settings.oidc.client_secret is None
    assert settings.four_eyes("tt02")
    assert not ControlSettings.from_env({}).four_eyes("tt02")
    assert ControlSettings.from_env({}).four_eyes("production")
    with pytest.raises(ValueError, match="FJORD_OIDC_CLIENT_ID"):
        ControlSettings.from_env({"FJORD_OIDC_ISSUER": "https://x"})
    with pytest.raises(ValueError, match="lacks openid"):
        ControlSettings.from_env(
            {
                "FJORD_OIDC_ISSUER": "https://x",
                "FJORD_OIDC_CLIENT_ID": "a",
                "FJORD_OIDC_SCOPES": "groups",
            }
        )


async def test_api_tokens_expire_record_their_last_use_and_keep_to_their_environments(
    tmp_path: Path,
) -> None:
    async with opened(settings(tmp_path)) as plane:
        scoped = await tokens.create_token(
            plane,
            ADMIN,
            "ci",
            {"ttd": Role.app_admin},
            expires_in=dt.timedelta(days=1),
            environments=["tt02"],
        )
        assert scoped.info.expires_at is not None
        async with plane.db.session() as session:
            actor = await tokens.authenticate(session, scoped.token)
        assert actor.can("ttd", Role.app_admin, "tt02")
        assert not actor.can("ttd", Role.developer, "production")
        assert actor.identity == f"fjord#token/{scoped.info.id}"
        (listed,) = await tokens.list_tokens(plane, ADMIN)
        assert listed.last_used_at is not None
        assert listed.environments == ["tt02"]

        async with plane.db.session() as session:  # a day later
            row = await session.get(ApiToken, scoped.info.id)
            assert row is not None
            row.expires_at = utcnow() - dt.timedelta(seconds=1)
        async with plane.db.session() as session:
            with pytest.raises(UnauthenticatedError, match="expired"):
                await tokens.authenticate(session, scoped.token)
        with pytest.raises(InvalidError, match="unknown"):
            await tokens.create_token(plane, ADMIN, "x", {"ttd": Role.reader}, environments=["qa"])
