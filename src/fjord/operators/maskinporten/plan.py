"""The pure heart of the Maskinporten operator: observed state in, ordered commands out.

No I/O, no clock, no randomness (the caller passes ``now`` and the kid a new key would get), so
every branch is unit-tested by building an ``Observed`` by hand.

Ordering rule: Digdir is changed before the Secret, so an app never holds a key Digdir does not
know. A rotation registers ``[new, current]`` first, then writes the new key to the Secret; the
current key stays registered until the next rotation, for pods that have not reloaded yet.
Duplicate clients are deleted last, after the Secret points at the survivor.
"""

from __future__ import annotations

from dataclasses import replace

from fjord.maskinporten.registration import ClientRegistration
from fjord.operators.maskinporten.model import (
    ClearSecret,
    Command,
    CreateClient,
    DeleteClient,
    DeleteSecret,
    DigdirClient,
    GenerateKey,
    KeyPolicy,
    Observed,
    Outcome,
    Plan,
    ReplaceJwks,
    SecretState,
    UpdateClient,
    WriteSecret,
)
from fjord.spec.infra import MaskinportenClientReason

MIN_REQUEUE = 1.0
# Fields compared for drift: what the operator decides. Lifetimes etc. are left to Digdir.
_DRIFT_FIELDS = (
    "client_name",
    "description",
    "client_orgno",
    "integration_type",
    "application_type",
    "token_endpoint_auth_method",
    "grant_types",
    "active",
)


def identity(platform_id: str, namespace: str, name: str) -> str:
    """The deterministic description (and name) that marks a Digdir client as one CR's."""
    return f"fjord:{platform_id}:{namespace}/{name}"


def desired_registration(observed: Observed) -> ClientRegistration:
    return ClientRegistration.maskinporten(
        client_name=observed.identity,
        description=observed.identity,
        client_orgno=observed.client_orgno,
        scopes=list(observed.resource.scopes),
    )


def plan(observed: Observed, policy: KeyPolicy) -> Plan:
    """What to do now, in order, to make Digdir and the Secret match the CR."""
    if observed.resource.deleting:
        return plan_deletion(observed)
    secret = observed.secret
    if secret.foreign_owner is not None:
        return Plan(
            commands=(),
            outcome=Outcome(
                "False",
                MaskinportenClientReason.SECRET_OWNED_ELSEWHERE,
                f"Secret {secret.name} is controlled by {secret.foreign_owner}; choose another "
                "spec.secretName or remove that Secret",
            ),
            client_id=observed.resource.status_client_id,
            key_ids=(),
            next_rotation=None,
            requeue_after=policy.stalled_retry,
            stalled=True,
        )
    primary, duplicates = choose_client(observed)
    plan_ = _create(observed, policy) if primary is None else _converge(observed, policy, primary)
    extra: list[Command] = [
        DeleteClient(d.client_id, f"duplicate of {primary.client_id if primary else 'new'}")
        for d in duplicates
    ]
    extra.extend(_retire_old_secret(observed))
    if not extra:
        return plan_
    return replace(plan_, commands=plan_.commands + tuple(extra))


def choose_client(observed: Observed) -> tuple[DigdirClient | None, list[DigdirClient]]:
    """The client to keep and the duplicates to delete.

    The Secret's client wins (apps use it right now), then the one in status, then the oldest:
    a crash between "create" and "record the id" leaves one client that the next pass adopts.
    """
    clients = list(observed.clients)
    if not clients:
        return None, []
    settings = observed.secret.settings
    preferred = [settings.client_id if settings else None, observed.resource.status_client_id]
    for client_id in preferred:
        for client in clients:
            if client.client_id == client_id:
                return client, [c for c in clients if c is not client]
    ordered = sorted(clients, key=lambda c: (c.created or "", c.client_id))
    return ordered[0], ordered[1:]


def _create(observed: Observed, policy: KeyPolicy) -> Plan:
    r = observed.resource
    kid = observed.new_kid
    commands: tuple[Command, ...] = (
        CreateClient(desired_registration(observed)),
        GenerateKey(kid),
        ReplaceJwks(None, (kid,), "new client"),
        WriteSecret(r.secret_name, None, (kid,), r.scopes, "new client"),
    )
    next_rotation = _rotation_due(observed.now, observed.now + policy.lifetime, policy)
    return Plan(
        commands=commands,
        outcome=_ready(),
        client_id=None,
        key_ids=(kid,),
        next_rotation=next_rotation,
        requeue_after=_requeue(observed.now, next_rotation, policy),
        rotation_request=r.rotate_request,
    )


def _converge(observed: Observed, policy: KeyPolicy, client: DigdirClient) -> Plan:
    r = observed.resource
    now = observed.now
    commands: list[Command] = []
    notes: list[str] = []

    desired = desired_registration(observed)
    changes = registration_changes(client.registration, desired)
    if changes:
        commands.append(UpdateClient(client.client_id, desired, changes))

    # The keys we hold privately for *this* client (a Secret of another client is useless here:
    # Digdir refuses a kid that another client already registered).
    settings = observed.secret.settings
    held = settings if settings is not None and settings.client_id == client.client_id else None
    held_kids = tuple(str(k.get("kid")) for k in held.all_keys()) if held else ()
    active = held.kid if held else None

    rotate_reason = _rotation_reason(observed, policy, client, active)
    if rotate_reason is not None:
        kid = observed.new_kid
        kids = (kid, *([active] if active else []))
        commands.append(GenerateKey(kid))
        commands.append(ReplaceJwks(client.client_id, kids, rotate_reason))
        commands.append(WriteSecret(r.secret_name, client.client_id, kids, r.scopes, rotate_reason))
        next_rotation = _rotation_due(now, now + policy.lifetime, policy)
        return Plan(
            commands=tuple(commands),
            outcome=_ready(),
            client_id=client.client_id,
            key_ids=kids,
            next_rotation=next_rotation,
            requeue_after=_requeue(now, next_rotation, policy),
            rotation_request=r.rotate_request,
            notes=(rotate_reason,),
        )

    # No rotation: Digdir must hold exactly the active key plus at most max_previous others.
    kids = held_kids[: 1 + policy.max_previous]
    registered = tuple(k.kid for k in client.keys)
    if set(registered) != set(kids):
        why = "key drift: Digdir has " + (", ".join(registered) or "no keys")
        commands.append(ReplaceJwks(client.client_id, kids, why))
        notes.append(why)
    secret_why = _secret_outdated(observed, client.client_id, kids)
    if secret_why is not None:
        commands.append(WriteSecret(r.secret_name, client.client_id, kids, r.scopes, secret_why))
    active_key = client.key(kids[0])
    # A key we (re-)post now lives a year from now; otherwise Digdir's own dates count.
    reposted = any(isinstance(c, ReplaceJwks) for c in commands)
    created = active_key.created if active_key and active_key.created is not None else now
    expires = (
        now + policy.lifetime
        if reposted or active_key is None or active_key.expires is None
        else active_key.expires
    )
    next_rotation = _rotation_due(created, expires, policy)
    return Plan(
        commands=tuple(commands),
        outcome=_ready(),
        client_id=client.client_id,
        key_ids=kids,
        next_rotation=next_rotation,
        requeue_after=_requeue(now, next_rotation, policy),
        rotation_request=r.status_rotation_request,
        notes=tuple(notes),
    )


def registration_changes(
    actual: ClientRegistration, desired: ClientRegistration
) -> tuple[str, ...]:
    """Fields where Digdir differs from what we want (scopes compared as sets)."""
    changed = [f for f in _DRIFT_FIELDS if getattr(actual, f) != getattr(desired, f)]
    if set(actual.scopes) != set(desired.scopes) or len(actual.scopes) != len(desired.scopes):
        changed.append("scopes")
    return tuple(changed)


def _rotation_reason(
    observed: Observed, policy: KeyPolicy, client: DigdirClient, active: str | None
) -> str | None:
    """Why a new key is needed now, or None."""
    r = observed.resource
    if active is None:
        return "no usable key in the Secret"
    if r.rotate_request is not None and r.rotate_request != r.status_rotation_request:
        return f"rotation requested ({r.rotate_request})"
    key = client.key(active)
    if key is None:
        return None  # Digdir lost the key: re-posting it (drift repair) is enough
    created = key.created if key.created is not None else observed.now
    expires = key.expires if key.expires is not None else observed.now + policy.lifetime
    if observed.now >= _rotation_due(created, expires, policy):
        return "key rotation due"
    return None


def _rotation_due(created: float, expires: float, policy: KeyPolicy) -> float:
    return min(created + policy.max_age, expires - policy.renew_before)


def _requeue(now: float, next_rotation: float | None, policy: KeyPolicy) -> float:
    """The earlier of the periodic resync and the next rotation (never zero: no busy loop)."""
    wait = policy.resync
    if next_rotation is not None:
        wait = min(wait, next_rotation - now)
    return max(MIN_REQUEUE, wait)


def _secret_outdated(observed: Observed, client_id: str, kids: tuple[str, ...]) -> str | None:
    secret = observed.secret
    settings = secret.settings
    if not secret.exists:
        return "Secret missing"
    if settings is None:
        return "Secret unreadable"
    if not secret.owned:
        return "adopt Secret"
    if settings.client_id != client_id:
        return "Secret holds another client"
    if tuple(str(k.get("kid")) for k in settings.all_keys()) != kids:
        return "Secret keys differ"
    if settings.scopes != observed.resource.scopes:
        return "scopes changed"
    if settings.issuer != observed.authority:
        return "authority changed"
    return None


def _retire_old_secret(observed: Observed) -> list[Command]:
    """After a rename of spec.secretName, the old Secret goes (only if it is ours)."""
    old = observed.old_secret
    if old is None or not old.exists or old.name == observed.resource.secret_name:
        return []
    return _clear(old, "spec.secretName changed")


def _clear(secret: SecretState, why: str) -> list[Command]:
    if not secret.exists:
        return []
    if secret.owned:
        return [DeleteSecret(secret.name, why)]
    if secret.foreign_owner is None and secret.has_our_keys:
        return [ClearSecret(secret.name, why)]
    return []  # someone else's Secret: never touch it


def plan_deletion(observed: Observed) -> Plan:
    """Finalizer: delete every client of ours in Digdir, then clear the Secret(s)."""
    commands: list[Command] = [
        DeleteClient(c.client_id, "resource deleted") for c in observed.clients
    ]
    commands.extend(_clear(observed.secret, "resource deleted"))
    if observed.old_secret is not None and observed.old_secret.name != observed.secret.name:
        commands.extend(_clear(observed.old_secret, "resource deleted"))
    return Plan(
        commands=tuple(commands),
        outcome=Outcome(
            "False",
            MaskinportenClientReason.DELETING,
            "deleting the client in Digdir and the Secret",
        ),
        client_id=None,
        key_ids=(),
        next_rotation=None,
        requeue_after=MIN_REQUEUE,
    )


def _ready() -> Outcome:
    return Outcome(
        "True",
        MaskinportenClientReason.SYNCED,
        "the client, its keys and the Secret match the spec",
    )
