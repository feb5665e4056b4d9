"""The Maskinporten operator's pure plan: every branch, from hand-built observations."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from fjord.maskinporten.keys import generate_jwk
from fjord.maskinporten.registration import ClientRegistration
from fjord.maskinporten.secret_format import MaskinportenSettings
from fjord.operators.maskinporten.model import (
    DAY,
    YEAR,
    ClearSecret,
    CreateClient,
    DeleteClient,
    DeleteSecret,
    DigdirClient,
    GenerateKey,
    KeyPolicy,
    Observed,
    RegisteredKey,
    ReplaceJwks,
    Resource,
    SecretState,
    UpdateClient,
    WriteSecret,
)
from fjord.operators.maskinporten.plan import (
    MIN_REQUEUE,
    choose_client,
    desired_registration,
    identity,
    plan,
    registration_changes,
)

NOW = 1_800_000_000.0
ISSUER = "https://test.maskinporten.no/"
IDENT = identity("c1", "ns", "app")
POLICY = KeyPolicy()
KEYS = {kid: generate_jwk(kid, size=1024) for kid in ("k1", "k2", "k3")}


def resource(**changes: Any) -> Resource:
    base = Resource(
        namespace="ns",
        name="app",
        uid="uid-1",
        generation=1,
        scopes=("a:read",),
        secret_name="app-mp",
    )
    return replace(base, **changes)


def settings(client_id: str = "c-1", kids: tuple[str, ...] = ("k1",), **kw: Any) -> Any:
    return MaskinportenSettings.for_issuer(
        issuer=kw.get("issuer", ISSUER),
        client_id=client_id,
        jwk=KEYS[kids[0]],
        scopes=kw.get("scopes", ("a:read",)),
        jwks=[KEYS[k] for k in kids],
    )


def secret(settings_: Any = None, **kw: Any) -> SecretState:
    return SecretState(
        name=kw.get("name", "app-mp"),
        exists=kw.get("exists", settings_ is not None),
        owned=kw.get("owned", True),
        foreign_owner=kw.get("foreign_owner"),
        settings=settings_,
        has_our_keys=kw.get("has_our_keys", settings_ is not None),
    )


def digdir(
    client_id: str = "c-1",
    kids: tuple[str, ...] = ("k1",),
    *,
    created: float = NOW - DAY,
    scopes: tuple[str, ...] = ("a:read",),
    when: str = "2026-01-01T00:00:00Z",
    **reg: Any,
) -> DigdirClient:
    registration = ClientRegistration.maskinporten(
        client_name=IDENT, description=IDENT, client_orgno="310000001", scopes=list(scopes)
    )
    registration = registration.model_copy(update=reg)
    return DigdirClient(
        client_id=client_id,
        registration=registration,
        keys=tuple(RegisteredKey(k, created, created + YEAR) for k in kids),
        created=when,
    )


def observed(**changes: Any) -> Observed:
    base = Observed(
        resource=resource(),
        identity=IDENT,
        client_orgno="310000001",
        authority=ISSUER,
        clients=(digdir(),),
        secret=secret(settings()),
        now=NOW,
        new_kid="new",
    )
    return replace(base, **changes)


def kinds(p: Any) -> list[str]:
    return [type(c).__name__ for c in p.commands]


# -- steady state and requeue --------------------------------------------------------------------


def test_in_sync_does_nothing_and_requeues_at_the_resync() -> None:
    p = plan(observed(), POLICY)
    assert p.commands == ()
    assert p.outcome.status == "True"
    assert p.client_id == "c-1"
    assert p.key_ids == ("k1",)
    assert p.requeue_after == POLICY.resync
    assert p.next_rotation == NOW - DAY + POLICY.max_age


def test_requeue_at_the_next_rotation_when_it_is_sooner_than_the_resync() -> None:
    created = NOW - POLICY.max_age + 3600  # rotation due in one hour
    p = plan(observed(clients=(digdir(created=created),)), POLICY)
    assert p.commands == ()
    assert p.requeue_after == pytest.approx(3600)


def test_requeue_never_below_the_minimum() -> None:
    policy = replace(POLICY, max_age=DAY, resync=0.1)
    p = plan(observed(), policy)
    assert p.requeue_after == MIN_REQUEUE


def test_rotation_due_by_expiry_uses_digdirs_exp() -> None:
    client = digdir()
    client = replace(client, keys=(RegisteredKey("k1", NOW - DAY, NOW + POLICY.renew_before - 1),))
    p = plan(observed(clients=(client,)), POLICY)
    assert kinds(p) == ["GenerateKey", "ReplaceJwks", "WriteSecret"]
    assert p.notes == ("key rotation due",)


# -- create and adopt ----------------------------------------------------------------------------


def test_no_client_creates_then_keys_then_secret_in_that_order() -> None:
    p = plan(observed(clients=(), secret=secret()), POLICY)
    assert kinds(p) == ["CreateClient", "GenerateKey", "ReplaceJwks", "WriteSecret"]
    create = p.commands[0]
    assert isinstance(create, CreateClient)
    assert create.registration.scopes == ["a:read"]
    assert create.registration.description == IDENT
    assert create.registration.integration_type == "maskinporten"
    assert p.commands[2] == ReplaceJwks(None, ("new",), "new client")
    assert p.commands[3] == WriteSecret("app-mp", None, ("new",), ("a:read",), "new client")
    assert p.client_id is None
    assert p.key_ids == ("new",)
    assert p.next_rotation == NOW + POLICY.max_age


def test_adopts_a_client_found_by_identity_after_a_crash() -> None:
    # Created, then crashed before the Secret or status recorded it: no duplicate is made.
    p = plan(observed(secret=secret()), POLICY)
    assert "CreateClient" not in kinds(p)
    assert kinds(p) == ["GenerateKey", "ReplaceJwks", "WriteSecret"]
    assert p.commands[1] == ReplaceJwks("c-1", ("new",), "no usable key in the Secret")


def test_duplicates_are_deleted_last_and_the_secrets_client_wins() -> None:
    clients = (digdir("c-0", (), when="2025-01-01"), digdir("c-1"), digdir("c-2", ()))
    p = plan(observed(clients=clients), POLICY)
    assert p.commands == (
        DeleteClient("c-0", "duplicate of c-1"),
        DeleteClient("c-2", "duplicate of c-1"),
    )


def test_choose_client_prefers_secret_then_status_then_oldest() -> None:
    a, b, c = digdir("a", when="2026-03-01"), digdir("b", when="2026-01-01"), digdir("c")
    obs = observed(clients=(a, b, c), secret=secret())
    assert choose_client(obs)[0] is b  # oldest
    obs = replace(obs, resource=resource(status_client_id="a"))
    assert choose_client(obs)[0] is a  # status
    obs = replace(obs, secret=secret(settings("c")))
    assert choose_client(obs)[0] is c  # the Secret (what apps use right now)
    assert choose_client(observed(clients=())) == (None, [])


# -- registration drift and scopes ---------------------------------------------------------------


def test_scope_change_updates_the_client_before_the_secret() -> None:
    obs = observed(resource=resource(scopes=("a:read", "b:write")))
    p = plan(obs, POLICY)
    assert kinds(p) == ["UpdateClient", "WriteSecret"]
    update = p.commands[0]
    assert isinstance(update, UpdateClient)
    assert update.changes == ("scopes",)
    assert update.registration.scopes == ["a:read", "b:write"]
    assert p.commands[1] == WriteSecret(
        "app-mp", "c-1", ("k1",), ("a:read", "b:write"), "scopes changed"
    )


def test_drift_in_digdir_is_repaired() -> None:
    client = digdir(active=False, client_name="renamed")
    p = plan(observed(clients=(client,)), POLICY)
    assert kinds(p) == ["UpdateClient"]
    assert p.commands[0].changes == ("client_name", "active")  # type: ignore[union-attr]


def test_registration_changes_compares_scopes_as_sets() -> None:
    want = desired_registration(observed(resource=resource(scopes=("x", "y"))))
    same = want.model_copy(update={"scopes": ["y", "x"]})
    assert registration_changes(same, want) == ()
    dup = want.model_copy(update={"scopes": ["x", "y", "y"]})
    assert registration_changes(dup, want) == ("scopes",)


# -- keys ----------------------------------------------------------------------------------------


def test_rotation_on_annotation_keeps_the_current_key_as_previous() -> None:
    obs = observed(resource=resource(rotate_request="r1"))
    p = plan(obs, POLICY)
    assert p.commands == (
        GenerateKey("new"),
        ReplaceJwks("c-1", ("new", "k1"), "rotation requested (r1)"),
        WriteSecret("app-mp", "c-1", ("new", "k1"), ("a:read",), "rotation requested (r1)"),
    )
    assert p.rotation_request == "r1"
    assert p.key_ids == ("new", "k1")


def test_a_handled_rotation_request_is_not_repeated() -> None:
    obs = observed(resource=resource(rotate_request="r1", status_rotation_request="r1"))
    p = plan(obs, POLICY)
    assert p.commands == ()
    assert p.rotation_request == "r1"


def test_rotation_drops_the_oldest_key() -> None:
    obs = observed(
        clients=(digdir(kids=("k1", "k2")),),
        secret=secret(settings(kids=("k1", "k2"))),
        resource=resource(rotate_request="r2"),
    )
    p = plan(obs, POLICY)
    assert p.key_ids == ("new", "k1")


def test_secret_without_usable_key_gets_a_new_one() -> None:
    p = plan(observed(secret=secret(None, exists=True, has_our_keys=True)), POLICY)
    assert kinds(p) == ["GenerateKey", "ReplaceJwks", "WriteSecret"]
    assert p.key_ids == ("new",)


def test_secret_of_another_client_is_not_reused() -> None:
    p = plan(observed(secret=secret(settings("someone-else"))), POLICY)
    assert p.commands[1] == ReplaceJwks("c-1", ("new",), "no usable key in the Secret")


def test_key_missing_in_digdir_is_reposted_not_rotated() -> None:
    p = plan(observed(clients=(digdir(kids=()),)), POLICY)
    assert p.commands == (ReplaceJwks("c-1", ("k1",), "key drift: Digdir has no keys"),)
    assert p.next_rotation == NOW + POLICY.max_age  # reposted: a new year starts


def test_extra_key_in_digdir_is_removed() -> None:
    p = plan(observed(clients=(digdir(kids=("k1", "k3")),)), POLICY)
    assert p.commands == (ReplaceJwks("c-1", ("k1",), "key drift: Digdir has k1, k3"),)


def test_more_previous_keys_than_the_policy_keeps_are_trimmed() -> None:
    obs = observed(
        clients=(digdir(kids=("k1", "k2", "k3")),),
        secret=secret(settings(kids=("k1", "k2", "k3"))),
    )
    p = plan(obs, POLICY)
    assert kinds(p) == ["ReplaceJwks", "WriteSecret"]
    assert p.key_ids == ("k1", "k2")


# -- the Secret ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "why"),
    [
        (secret(settings(), exists=False), "Secret missing"),
        (secret(settings(), owned=False), "adopt Secret"),
        (secret(settings(scopes=("other",))), "scopes changed"),
        (secret(settings(issuer="https://maskinporten.no/")), "authority changed"),
    ],
)
def test_outdated_secret_is_rewritten(state: SecretState, why: str) -> None:
    p = plan(observed(secret=state), POLICY)
    assert p.commands == (WriteSecret("app-mp", "c-1", ("k1",), ("a:read",), why),)


def test_secret_and_digdir_with_current_and_previous_key_in_sync() -> None:
    obs = observed(clients=(digdir(kids=("k1", "k2")),), secret=secret(settings(kids=("k1", "k2"))))
    assert plan(obs, POLICY).commands == ()


def test_foreign_secret_stalls_without_touching_digdir() -> None:
    p = plan(observed(secret=secret(settings(), foreign_owner="Deployment/x")), POLICY)
    assert p.commands == ()
    assert p.stalled
    assert p.outcome.reason == "SecretOwnedElsewhere"
    assert "Deployment/x" in p.outcome.message
    assert p.requeue_after == POLICY.stalled_retry


def test_renamed_secret_retires_the_old_one_after_writing_the_new() -> None:
    obs = observed(
        resource=resource(secret_name="new-name", status_secret_name="app-mp"),
        secret=secret(name="new-name"),
        old_secret=secret(settings()),
    )
    p = plan(obs, POLICY)
    assert kinds(p) == ["GenerateKey", "ReplaceJwks", "WriteSecret", "DeleteSecret"]
    assert p.commands[-1] == DeleteSecret("app-mp", "spec.secretName changed")


# -- deletion ------------------------------------------------------------------------------------


def test_deletion_deletes_every_client_then_the_secret() -> None:
    obs = observed(
        resource=resource(deleting=True),
        clients=(digdir("c-1"), digdir("c-2")),
    )
    p = plan(obs, POLICY)
    assert p.commands == (
        DeleteClient("c-1", "resource deleted"),
        DeleteClient("c-2", "resource deleted"),
        DeleteSecret("app-mp", "resource deleted"),
    )
    assert p.outcome.reason == "Deleting"


def test_deletion_clears_an_unowned_secret_and_never_touches_a_foreign_one() -> None:
    obs = observed(resource=resource(deleting=True), secret=secret(settings(), owned=False))
    assert plan(obs, POLICY).commands[-1] == ClearSecret("app-mp", "resource deleted")
    foreign = secret(settings(), owned=False, foreign_owner="Deployment/x")
    obs = observed(resource=resource(deleting=True), secret=foreign, clients=())
    assert plan(obs, POLICY).commands == ()


def test_deletion_also_retires_the_previous_secret_name() -> None:
    obs = observed(
        resource=resource(deleting=True, secret_name="b"),
        clients=(),
        secret=secret(name="b"),
        old_secret=secret(settings(), name="a"),
    )
    assert plan(obs, POLICY).commands == (DeleteSecret("a", "resource deleted"),)


def test_identity_is_deterministic() -> None:
    assert identity("c1", "ns", "app") == "fjord:c1:ns/app"
