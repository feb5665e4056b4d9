"""The Secret/env format: round trips, precedence and validation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from fjord.maskinporten.errors import SettingsError
from fjord.maskinporten.keys import generate_jwk, public_jwk
from fjord.maskinporten.secret_format import ENV_KEYS, SETTINGS_JSON, MaskinportenSettings
from fjord.maskinporten.settings_source import SecretDirectory


@pytest.fixture(scope="module")
def key() -> dict[str, Any]:
    return generate_jwk("k1")


def settings(key: dict[str, Any], **changes: Any) -> MaskinportenSettings:
    base = MaskinportenSettings.for_issuer(
        issuer="https://test.maskinporten.no/", client_id="c1", jwk=key, scopes=["a:b", "c:d"]
    )
    return base.model_copy(update=changes) if changes else base


def test_for_issuer_follows_maskinporten_layout(key: dict[str, Any]) -> None:
    s = MaskinportenSettings.for_issuer(issuer="https://maskinporten.no", client_id="c", jwk=key)
    assert s.issuer == "https://maskinporten.no/"
    assert s.token_endpoint == "https://maskinporten.no/token"
    assert s.well_known_url == "https://maskinporten.no/.well-known/oauth-authorization-server"
    assert s.kid == "k1"


def test_secret_data_has_env_keys_and_json(key: dict[str, Any]) -> None:
    data = settings(key).to_secret_data()
    assert set(data) == {*ENV_KEYS, SETTINGS_JSON}
    assert data["MASKINPORTEN_SCOPES"] == "a:b c:d"
    assert json.loads(data["MASKINPORTEN_JWK"]) == key
    document = json.loads(data[SETTINGS_JSON])["MaskinportenSettings"]
    assert document["ClientId"] == "c1"
    assert document["Authority"] == "https://test.maskinporten.no/"
    assert document["Jwks"] == {"keys": [key]}


def test_round_trips(key: dict[str, Any]) -> None:
    original = settings(key)
    data = original.to_secret_data()
    assert MaskinportenSettings.from_secret_data(data) == original
    env_only = {k: v for k, v in data.items() if k in ENV_KEYS}
    assert MaskinportenSettings.from_env(env_only) == original
    as_bytes = {k: v.encode() for k, v in data.items()}
    assert MaskinportenSettings.from_secret_data(as_bytes) == original


def test_json_document_wins(key: dict[str, Any]) -> None:
    data = settings(key).to_secret_data()
    data["MASKINPORTEN_CLIENT_ID"] = "stale"
    assert MaskinportenSettings.from_secret_data(data).client_id == "c1"


@pytest.mark.parametrize(
    "change",
    [
        {"issuer": "https://maskinporten.no"},
        {"kid": "other"},
        {"kid": "bad kid"},
        {"scopes": ("a", "a")},
        {"jwk": "public"},
    ],
)
def test_invalid_settings_are_refused(key: dict[str, Any], change: dict[str, Any]) -> None:
    data = settings(key).to_secret_data()
    del data[SETTINGS_JSON]
    if "issuer" in change:
        data["MASKINPORTEN_ISSUER"] = change["issuer"]
    if "kid" in change:
        data["MASKINPORTEN_KID"] = change["kid"]
    if "scopes" in change:
        data["MASKINPORTEN_SCOPES"] = " ".join(change["scopes"])
    if "jwk" in change:
        data["MASKINPORTEN_JWK"] = json.dumps(public_jwk(key))
    with pytest.raises(SettingsError):
        MaskinportenSettings.from_secret_data(data)


def test_missing_keys_are_named(key: dict[str, Any]) -> None:
    with pytest.raises(SettingsError, match="MASKINPORTEN_KID"):
        MaskinportenSettings.from_secret_data({"MASKINPORTEN_CLIENT_ID": "c"})


def test_secret_directory_reloads_on_symlink_swap(key: dict[str, Any], tmp_path: Path) -> None:
    def publish(generation: int, s: MaskinportenSettings) -> None:
        version = tmp_path / f"..v{generation}"
        version.mkdir()
        for name, value in s.to_secret_data().items():
            (version / name).write_text(value)
            link = tmp_path / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        (tmp_path / "..tmp").symlink_to(version.name)
        os.replace(tmp_path / "..tmp", tmp_path / "..data")

    publish(1, settings(key))
    source = SecretDirectory(tmp_path, check_interval=0)
    first = source.current()
    assert source.current() is first
    publish(2, settings(key))  # same content, new inodes: no reload
    assert source.current() is first
    publish(3, settings(key, client_id="c2"))
    assert source.current().client_id == "c2"
    assert source.reloads == 2


def test_secret_directory_keeps_settings_on_broken_update(
    key: dict[str, Any], tmp_path: Path
) -> None:
    for name, value in settings(key).to_secret_data().items():
        (tmp_path / name).write_text(value)
    source = SecretDirectory(tmp_path, check_interval=0)
    first = source.current()
    (tmp_path / SETTINGS_JSON).write_text("{half-written")
    assert source.current() is first
    (tmp_path / SETTINGS_JSON).write_text(
        settings(key, client_id="c3").to_secret_data()[SETTINGS_JSON]
    )
    assert source.current().client_id == "c3"


def test_secret_directory_check_interval(key: dict[str, Any], tmp_path: Path) -> None:
    clock = [0.0]
    for name, value in settings(key).to_secret_data().items():
        (tmp_path / name).write_text(value)
    source = SecretDirectory(tmp_path, check_interval=5, monotonic=lambda: clock[0])
    assert source.current().client_id == "c1"
    (tmp_path / SETTINGS_JSON).write_text(
        settings(key, client_id="c4").to_secret_data()[SETTINGS_JSON]
    )
    clock[0] = 4.9
    assert source.current().client_id == "c1"
    clock[0] = 5.0
    assert source.current().client_id == "c4"


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(SettingsError):
        SecretDirectory(tmp_path / "nope").current()
