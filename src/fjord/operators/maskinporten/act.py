"""Act: run a plan's commands in order; after the first failure the rest are skipped.

The plan already put Digdir before the Secret, so stopping at the first failure keeps the
invariant "the Secret only holds keys Digdir knows". Private keys live only in memory here and
in the Secret: generated keys are handed to Digdir as public halves (the admin client strips
private members as well).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fjord.maskinporten.admin import SelfServiceClient
from fjord.maskinporten.errors import AdminNotFoundError
from fjord.maskinporten.keys import generate_jwk
from fjord.maskinporten.secret_format import SECRET_KEYS, MaskinportenSettings
from fjord.operators.common.kubeapi import CountingKube
from fjord.operators.maskinporten.model import (
    HASH_ANNOTATION,
    MANAGED_BY_VALUE,
    OWNER_LABEL,
    ClearSecret,
    Command,
    CreateClient,
    DeleteClient,
    DeleteSecret,
    GenerateKey,
    ReplaceJwks,
    Resource,
    UpdateClient,
    WriteSecret,
)
from fjord.spec.infra import API_VERSION, MaskinportenClientSpec

FIELD_MANAGER = "fjord-maskinporten"
KeyFactory = Callable[[str], Awaitable[dict[str, Any]]]


@dataclass
class Action:
    action: str
    result: str  # ok | failed | skipped
    detail: str
    time: datetime

    def as_status(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "result": self.result,
            "detail": self.detail[:500],
            "time": self.time.isoformat().replace("+00:00", "Z"),
        }


@dataclass
class ActResult:
    actions: list[Action] = field(default_factory=list)
    client_id: str | None = None  # the client the commands worked on (created or given)
    error: BaseException | None = None
    failed: Command | None = None
    on_create_attempt: Callable[[], None] = lambda: None
    keys: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)  # being made

    @property
    def ok(self) -> bool:
        return self.error is None


def rsa_key_factory(size: int) -> KeyFactory:
    """Generate keys in a thread: RSA generation takes tens of ms and must not stall the loop."""

    async def make(kid: str) -> dict[str, Any]:
        return await asyncio.to_thread(generate_jwk, kid, size=size)

    return make


@dataclass
class Actor:
    """Runs commands for one CR against Digdir and the cluster."""

    api: SelfServiceClient
    kube: CountingKube
    authority: str
    new_key: KeyFactory

    async def run(
        self,
        resource: Resource,
        commands: tuple[Command, ...],
        keyring: dict[str, dict[str, Any]],
        on_create_attempt: Callable[[], None] = lambda: None,
    ) -> ActResult:
        """``on_create_attempt`` runs right before a create (``ClientListing`` freshness)."""
        result = ActResult(on_create_attempt=on_create_attempt)
        # Keys are generated (CPU, in a thread) while the Digdir calls before them are in flight.
        result.keys = {
            c.kid: asyncio.ensure_future(self.new_key(c.kid))
            for c in commands
            if isinstance(c, GenerateKey)
        }
        try:
            return await self._run(resource, commands, keyring, result)
        finally:
            for pending in result.keys.values():  # unused after a failure: never left the process
                if pending.done() and not pending.cancelled():
                    pending.exception()  # retrieved, so asyncio does not log it as lost
                else:
                    pending.cancel()

    async def _run(
        self,
        resource: Resource,
        commands: tuple[Command, ...],
        keyring: dict[str, dict[str, Any]],
        result: ActResult,
    ) -> ActResult:
        for index, command in enumerate(commands):
            try:
                detail = await self._one(resource, command, keyring, result)
            except Exception as exc:  # classified by the reconciler; recorded here
                result.error, result.failed = exc, command
                result.actions.append(_action(command, "failed", f"{type(exc).__name__}: {exc}"))
                result.actions.extend(
                    _action(c, "skipped", "an earlier command failed")
                    for c in commands[index + 1 :]
                )
                break
            result.actions.append(_action(command, "ok", detail))
        return result

    async def _one(
        self,
        resource: Resource,
        command: Command,
        keyring: dict[str, dict[str, Any]],
        result: ActResult,
    ) -> str:
        match command:
            case CreateClient(registration=registration):
                result.on_create_attempt()
                created = await self.api.create_client(registration)
                result.client_id = created.client_id
                return f"created {created.client_id} with scopes {' '.join(registration.scopes)}"
            case UpdateClient(client_id=client_id, registration=registration, changes=changes):
                result.client_id = client_id
                await self.api.update_client(client_id, registration)
                return f"updated {client_id}: {', '.join(changes)}"
            case DeleteClient(client_id=client_id, why=why):
                try:
                    await self.api.delete_client(client_id)
                except AdminNotFoundError:
                    return f"{client_id} was already gone ({why})"
                return f"deleted {client_id} ({why})"
            case GenerateKey(kid=kid):
                keyring[kid] = await result.keys.pop(kid)
                return f"generated key {kid}"
            case ReplaceJwks(client_id=client_id, kids=kids, why=why):
                target = self._client_id(client_id, result)
                await self.api.replace_jwks(target, [keyring[k] for k in kids])
                return f"registered keys {', '.join(kids)} on {target} ({why})"
            case WriteSecret(
                secret_name=name, client_id=client_id, kids=kids, scopes=scopes, why=why
            ):
                target = self._client_id(client_id, result)
                settings = MaskinportenSettings.for_issuer(
                    issuer=self.authority,
                    client_id=target,
                    jwk=keyring[kids[0]],
                    scopes=scopes,
                    jwks=[keyring[k] for k in kids],
                )
                await self.kube.apply(
                    secret_manifest(resource, name, settings),
                    field_manager=FIELD_MANAGER,
                    force=True,
                )
                return f"wrote Secret {name} with key {kids[0]} ({why})"
            case DeleteSecret(secret_name=name, why=why):
                await self.kube.delete("v1", "Secret", name, resource.namespace)
                return f"deleted Secret {name} ({why})"
            case ClearSecret(secret_name=name, why=why):
                await self.kube.patch(
                    "v1",
                    "Secret",
                    name,
                    {"data": dict.fromkeys(SECRET_KEYS)},
                    resource.namespace,
                )
                return f"removed the Maskinporten keys from Secret {name} ({why})"
        raise TypeError(f"unknown command {command!r}")  # pragma: no cover

    @staticmethod
    def _client_id(client_id: str | None, result: ActResult) -> str:
        target = client_id or result.client_id
        if target is None:  # the plan always creates before it refers to "the new client"
            raise RuntimeError("no client id: the plan refers to a client it did not create")
        return target


def secret_manifest(
    resource: Resource, name: str, settings: MaskinportenSettings
) -> dict[str, Any]:
    """The app Secret: documented keys, owned by the CR (garbage-collected with it)."""
    string_data = settings.to_secret_data()
    data = {k: base64.b64encode(v.encode()).decode() for k, v in sorted(string_data.items())}
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": resource.namespace,
            "labels": {
                OWNER_LABEL: resource.name,
                "app.kubernetes.io/managed-by": MANAGED_BY_VALUE,
            },
            "annotations": {HASH_ANNOTATION: digest},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": MaskinportenClientSpec.kind,
                    "name": resource.name,
                    "uid": resource.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": data,
    }


def data_hash(secret: dict[str, Any]) -> str:
    """The hash ``secret_manifest`` records, recomputed from a Secret read back."""
    data = {k: v for k, v in (secret.get("data") or {}).items() if k in SECRET_KEYS}
    return hashlib.sha256(
        json.dumps(dict(sorted(data.items())), sort_keys=True).encode()
    ).hexdigest()


def _action(command: Command, result: str, detail: str) -> Action:
    return Action(type(command).__name__, result, detail, datetime.now(UTC))
