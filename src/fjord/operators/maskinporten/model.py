"""The values the Maskinporten operator passes between observe, plan and act.

Everything here is immutable data with no I/O, so the plan can be a pure function of it and the
unit tests can build any situation by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fjord.maskinporten.registration import ClientRegistration
from fjord.maskinporten.secret_format import MaskinportenSettings

ROTATE_ANNOTATION: Final = "fjord.dev/rotate"
OWNER_LABEL: Final = "fjord.dev/maskinporten-client"  # on the Secret: the CR's name
HASH_ANNOTATION: Final = "fjord.dev/maskinporten-hash"  # on the Secret: hash of what we wrote
MANAGED_BY_VALUE: Final = "fjord"  # the app.kubernetes.io/managed-by label of our Secrets
DAY: Final = 24 * 3600.0
YEAR: Final = 365 * DAY


@dataclass(frozen=True)
class KeyPolicy:
    """When keys rotate and how often a client is re-checked."""

    resync: float = DAY  # re-check Digdir and the Secret at least this often
    max_age: float = 90 * DAY  # rotate a key this long after it was first registered
    renew_before: float = 30 * DAY  # … or this long before Digdir expires it
    lifetime: float = YEAR  # Digdir expires a key a year after it was last posted
    stalled_retry: float = 600.0  # retry a request Digdir refused (someone may fix access)
    max_previous: int = 1  # keys kept registered besides the active one (Digdir allows 5)


@dataclass(frozen=True)
class Resource:
    """The ``MaskinportenClient`` as observed: spec, the bits of status we rely on, metadata."""

    namespace: str
    name: str
    uid: str
    generation: int
    scopes: tuple[str, ...]
    secret_name: str
    deleting: bool = False
    rotate_request: str | None = None  # the fjord.dev/rotate annotation value
    status_client_id: str | None = None
    status_rotation_request: str | None = None
    status_secret_name: str | None = None


@dataclass(frozen=True)
class RegisteredKey:
    """A key as Digdir reports it (public half): when it was first posted and when it expires."""

    kid: str
    created: float | None = None
    expires: float | None = None


@dataclass(frozen=True)
class DigdirClient:
    """One of our clients in Digdir, with its registered keys."""

    client_id: str
    registration: ClientRegistration
    keys: tuple[RegisteredKey, ...] = ()
    created: str | None = None  # ISO time; orders duplicates (oldest wins)

    def key(self, kid: str) -> RegisteredKey | None:
        return next((k for k in self.keys if k.kid == kid), None)


@dataclass(frozen=True)
class SecretState:
    """The app Secret named by ``spec.secretName`` (or an older name still recorded in status)."""

    name: str
    exists: bool = False
    owned: bool = False  # this CR is its controller
    foreign_owner: str | None = None  # another controller, e.g. "Deployment/x"
    settings: MaskinportenSettings | None = None  # None: absent or unreadable
    has_our_keys: bool = False  # any MASKINPORTEN_* key present (even if unreadable)


@dataclass(frozen=True)
class Observed:
    """Everything one reconcile knows. ``clients`` are ours: found by id or by ``identity``."""

    resource: Resource
    identity: str  # the deterministic description that marks a client as this CR's
    client_orgno: str
    authority: str  # the issuer, ending in "/"
    clients: tuple[DigdirClient, ...]
    secret: SecretState
    now: float
    new_kid: str  # the kid to use if this pass generates a key (chosen by the caller)
    old_secret: SecretState | None = None  # the previous spec.secretName's Secret, if renamed


# -- commands ------------------------------------------------------------------------------------
# ``client_id=None`` means "the client created earlier in the same plan".


@dataclass(frozen=True)
class CreateClient:
    registration: ClientRegistration


@dataclass(frozen=True)
class UpdateClient:
    client_id: str
    registration: ClientRegistration
    changes: tuple[str, ...]  # field names that differ, for the action history


@dataclass(frozen=True)
class DeleteClient:
    client_id: str
    why: str


@dataclass(frozen=True)
class GenerateKey:
    kid: str


@dataclass(frozen=True)
class ReplaceJwks:
    client_id: str | None
    kids: tuple[str, ...]  # active first; material comes from the Secret or GenerateKey
    why: str


@dataclass(frozen=True)
class WriteSecret:
    secret_name: str
    client_id: str | None
    kids: tuple[str, ...]  # active first
    scopes: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class DeleteSecret:
    secret_name: str
    why: str


@dataclass(frozen=True)
class ClearSecret:
    """Remove our keys from a Secret we do not own (other keys stay)."""

    secret_name: str
    why: str


Command = (
    CreateClient
    | UpdateClient
    | DeleteClient
    | GenerateKey
    | ReplaceJwks
    | WriteSecret
    | DeleteSecret
    | ClearSecret
)


@dataclass(frozen=True)
class Outcome:
    """A condition the plan already knows (no command needed to decide it)."""

    status: str  # "True"/"False" for Ready
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    commands: tuple[Command, ...]
    outcome: Outcome  # Ready once every command succeeded (or why not)
    client_id: str | None  # after acting; None: created by this plan
    key_ids: tuple[str, ...]
    next_rotation: float | None
    requeue_after: float
    stalled: bool = False  # nothing to do until someone fixes the input
    rotation_request: str | None = None  # annotation value handled by this plan
    notes: tuple[str, ...] = ()
