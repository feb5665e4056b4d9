"""The Maskinporten operator end to end: real cluster, emulator, operator as a subprocess."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from conftest_maskinporten import (
    APP_ORGNO,
    OTHER,
    READ,
    WRITE,
    Operator,
    cleanup,
    create_client,
    decode_claims,
    emulator_clients,
    eventually,
    identity,
    key_accepted,
    mp_crd,
    mp_emulator,
    mp_emulator_server,
    mp_supplier_key,
    operator,
    operator_for,
    read_settings,
    request_rotation,
    set_scopes,
    supplier_dir,
    token_for,
    wait_ready,
)
from credentials_support import install_crds

from fjord.devcluster.cluster import ClusterState
from fjord.kube import Kube, condition
from fjord.maskinporten.emulator import EmulatorServer
from fjord.spec.infra import API_VERSION

pytestmark = pytest.mark.cluster
__all__ = ["mp_crd", "mp_emulator", "mp_emulator_server", "mp_supplier_key", "operator"]
__all__ += ["supplier_dir"]


async def events_about(kube: Kube, namespace: str, uid: str) -> list[dict[str, Any]]:
    """The operator's Events about one object, oldest first."""
    found = [
        e
        for e in await kube.items("events.k8s.io/v1", "Event", namespace)
        if e.get("regarding", {}).get("uid") == uid
    ]
    return sorted(found, key=lambda e: str(e.get("eventTime")))


async def test_create_update_rotate_delete(
    kube: Kube, namespace: str, mp_emulator: EmulatorServer, operator: Operator
) -> None:
    operator.start()
    await create_client(kube, "app1", namespace, [READ])
    cr = await wait_ready(kube, "app1", namespace, op=operator)

    # Digdir: exactly one client, with the CR's scopes, our identity and the Secret's public key.
    clients = emulator_clients(mp_emulator)
    assert len(clients) == 1
    client = clients[0]
    assert client["scopes"] == [READ]
    assert client["description"] == identity(namespace, "app1")
    assert client["client_orgno"] == APP_ORGNO
    status = cr["status"]
    assert status["clientId"] == client["client_id"]
    assert status["authority"] == mp_emulator.issuer
    settings = await read_settings(kube, namespace, "app1-maskinporten")
    assert settings is not None
    assert settings.client_id == client["client_id"]
    assert [k["kid"] for k in client["keys"]] == [settings.kid] == status["keyIds"]
    assert "d" not in client["keys"][0]  # only the public half left the cluster
    assert settings.scopes == (READ,)
    assert status["nextRotation"]
    assert status["lastActions"][0]["action"] == "WriteSecret"

    # The Secret belongs to the CR (garbage-collected with it).
    secret = await kube.get("v1", "Secret", "app1-maskinporten", namespace)
    assert secret is not None
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "MaskinportenClient",
        cr["metadata"]["uid"],
        True,
    )

    # Each change is an Event on the CR, in order, from the operator, naming what it did.
    created = await events_about(kube, namespace, cr["metadata"]["uid"])
    reasons = [e["reason"] for e in created]
    assert reasons.index("ClientCreated") < reasons.index("SecretWritten"), reasons
    assert {e["type"] for e in created} == {"Normal"}
    assert {e["reportingController"] for e in created} == {"fjord.dev/maskinporten-operator"}
    note = next(e["note"] for e in created if e["reason"] == "ClientCreated")
    assert client["client_id"] in note
    assert READ in note

    # The app's token client gets a token for those scopes with the Secret's data.
    claims = decode_claims(await token_for(settings))
    assert claims["scope"] == READ
    assert claims["client_id"] == client["client_id"]

    # Change scopes: the same client is updated, then the Secret.
    await set_scopes(kube, "app1", namespace, [READ, WRITE])
    await wait_ready(kube, "app1", namespace, op=operator)
    clients = emulator_clients(mp_emulator)
    assert [c["client_id"] for c in clients] == [client["client_id"]]
    assert sorted(clients[0]["scopes"]) == [READ, WRITE]
    settings = await read_settings(kube, namespace, "app1-maskinporten")
    assert settings is not None
    assert settings.scopes == (READ, WRITE)
    assert decode_claims(await token_for(settings, [WRITE]))["scope"] == WRITE

    # Rotation on the annotation, with a token obtainable throughout.
    stop = asyncio.Event()
    failures: list[str] = []
    tokens = 0

    async def keep_getting_tokens() -> None:
        nonlocal tokens
        while not stop.is_set():
            current = await read_settings(kube, namespace, "app1-maskinporten")
            assert current is not None
            try:
                await token_for(current)
                tokens += 1
            except Exception as exc:
                failures.append(f"{current.kid}: {exc}")
            await asyncio.sleep(0.05)

    prober = asyncio.create_task(keep_getting_tokens())
    old_kid = settings.kid
    for _ in range(2):
        value = await request_rotation(kube, "app1", namespace)

        async def rotated(value: str = value) -> bool:
            obj = await kube.get(API_VERSION, "MaskinportenClient", "app1", namespace)
            return bool(obj and (obj.get("status") or {}).get("rotationRequest") == value)

        await eventually(rotated)
    await asyncio.sleep(0.5)
    stop.set()
    await prober
    assert failures == []
    assert tokens > 0
    settings = await read_settings(kube, namespace, "app1-maskinporten")
    assert settings is not None
    assert settings.kid != old_kid
    keys = [k["kid"] for k in emulator_clients(mp_emulator)[0]["keys"]]
    assert len(keys) == 2
    assert keys[0] == settings.kid
    assert old_kid not in keys

    # Delete: the client goes from Digdir, the Secret goes, the CR goes.
    await kube.delete(API_VERSION, "MaskinportenClient", "app1", namespace)
    await kube.wait_for(
        API_VERSION, "MaskinportenClient", "app1", namespace, until=lambda o: o is None
    )
    assert emulator_clients(mp_emulator) == []
    assert await kube.get("v1", "Secret", "app1-maskinporten", namespace) is None


async def test_drift_lost_secret_and_unknown_scope(
    kube: Kube, namespace: str, mp_emulator: EmulatorServer, operator: Operator
) -> None:
    operator.start()
    await create_client(kube, "app2", namespace, [READ, OTHER])
    cr = await wait_ready(kube, "app2", namespace, op=operator)
    client_id = cr["status"]["clientId"]

    # Someone deletes the Secret: the operator notices (it watches its Secrets) and writes a new
    # key, registered in Digdir first.
    await kube.delete("v1", "Secret", "app2-maskinporten", namespace)

    async def rewritten() -> bool:
        s = await read_settings(kube, namespace, "app2-maskinporten")
        return s is not None and key_accepted(mp_emulator, s) is None

    await eventually(rewritten)
    assert [c["client_id"] for c in emulator_clients(mp_emulator)] == [client_id]

    # Someone edits the client in Digdir (scopes, deactivation): repaired at the next pass.
    state = mp_emulator.state
    with state.lock:
        state.clients[client_id].data["scopes"] = [READ]
        state.clients[client_id].data["active"] = False
    await request_rotation(kube, "app2", namespace)  # any wake-up; the resync would do it too

    async def repaired() -> bool:
        c = emulator_clients(mp_emulator)[0]
        return sorted(c["scopes"]) == sorted([READ, OTHER]) and c["active"] is True

    await eventually(repaired)

    # A scope the org may not use: Stalled with Digdir's message; the old Secret keeps working.
    await set_scopes(kube, "app2", namespace, [READ, "fjord:does-not-exist"])

    async def stalled() -> dict[str, object] | None:
        obj = await kube.get(API_VERSION, "MaskinportenClient", "app2", namespace)
        cond = condition(obj, "Stalled")
        return cond if cond and cond["status"] == "True" else None

    cond = await eventually(stalled)
    assert cond["reason"] == "DigdirRejected"
    assert "fjord:does-not-exist" in str(cond["message"])
    warnings = [
        e
        for e in await events_about(kube, namespace, cr["metadata"]["uid"])
        if e["type"] == "Warning"
    ]
    assert [e["reason"] for e in warnings][:1] == ["DigdirRejected"], warnings
    assert "fjord:does-not-exist" in warnings[0]["note"]
    settings = await read_settings(kube, namespace, "app2-maskinporten")
    assert settings is not None
    assert key_accepted(mp_emulator, settings) is None
    await token_for(settings, [READ])

    # Fixing the spec clears Stalled.
    await set_scopes(kube, "app2", namespace, [READ])
    cr = await wait_ready(kube, "app2", namespace, op=operator)
    assert condition(cr, "Stalled")["status"] == "False"  # type: ignore[index]
    assert emulator_clients(mp_emulator)[0]["scopes"] == [READ]


async def test_lost_secret_repaired_beside_the_credentials_operator(
    kube: Kube, namespace: str, mp_emulator: EmulatorServer, operator: Operator
) -> None:
    """kopf runs one Secrets watch per process, with one label selector: the credentials
    operator's must not hide the Maskinporten operator's Secrets when both run together."""
    await install_crds(kube)
    operator.argv += ["--only", "credentials"]
    operator.start()
    await create_client(kube, "app3", namespace, [READ])
    await wait_ready(kube, "app3", namespace, op=operator)
    await kube.delete("v1", "Secret", "app3-maskinporten", namespace)

    async def rewritten() -> bool:
        s = await read_settings(kube, namespace, "app3-maskinporten")
        return s is not None and key_accepted(mp_emulator, s) is None

    await eventually(rewritten)


async def test_rotates_on_time_without_any_event(
    cluster: ClusterState,
    kube: Kube,
    namespace: str,
    mp_emulator: EmulatorServer,
    supplier_dir: Path,
    tmp_path: Path,
    mp_crd: None,
) -> None:
    """Keys older than key-max-age rotate at the requeue the plan set (no resync, no event)."""
    op = operator_for(
        cluster, namespace, mp_emulator, supplier_dir, tmp_path / "op.log", key_max_age="4"
    )
    try:
        op.start()
        await create_client(kube, "app3", namespace, [READ])
        await wait_ready(kube, "app3", namespace, op=op)
        first = await read_settings(kube, namespace, "app3-maskinporten")
        assert first is not None
        seen = [first.kid]
        failures: list[str] = []
        while len(seen) < 3:
            current = await read_settings(kube, namespace, "app3-maskinporten")
            assert current is not None
            try:
                await token_for(current)
            except Exception as exc:
                failures.append(f"{current.kid}: {exc}")
            if current.kid != seen[-1]:
                seen.append(current.kid)
            await asyncio.sleep(0.1)
        assert failures == []
        registered = [k["kid"] for k in emulator_clients(mp_emulator)[0]["keys"]]
        assert registered[0] == seen[-1]
        assert seen[0] not in registered
        cr = await kube.get(API_VERSION, "MaskinportenClient", "app3", namespace)
        assert cr is not None
        assert cr["status"]["keyIds"] == registered
    finally:
        await cleanup(cluster, namespace, op, mp_emulator)
        op.stop()
