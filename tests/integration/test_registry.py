"""Registry-specific behaviour against the real docker-registry: auth, mounts and failures."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fjord.artifact import build_artifact
from fjord.devcluster.registry import LocalRegistry
from fjord.stores import (
    BlobOutcome,
    RegistryAuthError,
    RegistryError,
    RegistryStore,
    RetryPolicy,
    Signer,
    Trust,
    sign,
    verify,
)

FILES = {"tt02/app.yaml": b"kind: ConfigMap\n", "production/app.yaml": b"kind: ConfigMap\n"}


def repo_name() -> str:
    return f"ttd/apps/app-{uuid.uuid4().hex[:8]}"


def fast_retry() -> RetryPolicy:
    return RetryPolicy(attempts=2, initial_delay=0.01, max_delay=0.02)


async def test_wrong_password_is_a_clear_401(auth_registry: LocalRegistry) -> None:
    repo = repo_name()
    async with RegistryStore(auth_registry.url, username="fjord", password="wrong") as store:
        with pytest.raises(RegistryAuthError) as caught:
            await store.push(repo, build_artifact(FILES, source="s", revision="r"))
    error = caught.value
    assert error.status == 401
    assert error.registry == auth_registry.host
    assert error.repository == repo
    assert auth_registry.host in str(error)
    assert repo in str(error)
    assert "401" in str(error)


async def test_missing_credentials_are_reported(auth_registry: LocalRegistry) -> None:
    async with RegistryStore(auth_registry.url) as store:
        with pytest.raises(RegistryAuthError, match="wants credentials"):
            await store.list_tags(repo_name())


async def test_cross_repository_mount_is_used(registry: LocalRegistry) -> None:
    source, target, third = repo_name(), repo_name(), repo_name()
    artifact = build_artifact({"tt02/mount.yaml": uuid.uuid4().bytes}, source="s", revision="r")
    async with RegistryStore(registry.url) as store:
        await store.push(source, artifact, tag="tt02")
        assert await store.put_blob(target, artifact.layer, mount_from=[source]) == (
            BlobOutcome.MOUNTED
        )
        assert await store.put_blob(target, artifact.layer) == BlobOutcome.EXISTS
        await store.push(third, artifact, tag="tt02", mount_from=[source])
        assert (await store.pull(third, "tt02")).files() == artifact.files()
    # The registry's own access log shows the blobs of `third` arrived by mount, never by PUT.
    log = registry.log_path.read_text()
    mounts = [
        line for line in log.splitlines() if f"POST /v2/{third}/blobs/uploads/?mount=" in line
    ]
    assert len(mounts) == 2
    assert all('" 201 ' in line for line in mounts)
    assert f"PUT /v2/{third}/blobs/uploads/" not in log


async def test_images_pushed_together_upload_a_shared_blob_once(registry: LocalRegistry) -> None:
    repo = repo_name()
    files = {"tt02/shared.yaml": uuid.uuid4().bytes}
    first, second = (build_artifact(files, source="s", revision=r) for r in ("r1", "r2"))
    # Two releases of the same files: two manifests, the same config and layer blobs.
    assert first.digest != second.digest
    assert first.image.blobs == second.image.blobs
    async with RegistryStore(registry.url) as store:
        pushed = await store.push_all(repo, [first.image, second.image])
        assert pushed == [first.digest, second.digest]
        for artifact in (first, second):
            assert (await store.pull(repo, artifact.digest)).files() == artifact.files()
    uploads = [
        line
        for line in registry.log_path.read_text().splitlines()
        if f"PUT /v2/{repo}/blobs/uploads/" in line and "HTTP/1.1" in line
    ]
    assert len(uploads) == 2  # each shared blob once


async def test_a_failed_mount_falls_back_to_upload(registry: LocalRegistry) -> None:
    artifact = build_artifact({"tt02/fallback.yaml": uuid.uuid4().bytes}, source="s", revision="r")
    async with RegistryStore(registry.url) as store:
        outcome = await store.put_blob(repo_name(), artifact.layer, mount_from=[repo_name()])
    assert outcome == BlobOutcome.UPLOADED


async def test_registry_rejects_a_wrong_digest_without_retrying(registry: LocalRegistry) -> None:
    repo = repo_name()
    data = uuid.uuid4().bytes
    wrong = "sha256:" + "0" * 64
    async with RegistryStore(registry.url) as store:
        with pytest.raises(RegistryError) as caught:
            await store._put_blob(repo, wrong, data, ())
        assert caught.value.status == 400
        assert not await store.blob_exists(repo, wrong)
    puts = [
        line
        for line in registry.log_path.read_text().splitlines()
        if f"PUT /v2/{repo}/blobs/uploads/" in line and "HTTP/1.1" in line
    ]
    assert len(puts) == 1


async def test_tag_never_moves_when_the_registry_dies_mid_push(tmp_path: Path) -> None:
    repo = repo_name()
    old = build_artifact(FILES, source="s", revision="main@sha1:old")
    new = build_artifact({**FILES, "tt02/new.yaml": b"kind: New\n"}, source="s", revision="new")
    server = LocalRegistry.start(tmp_path / "registry")
    try:
        async with RegistryStore(server.url, retry=fast_retry()) as store:
            await store.push(repo, old, tag="tt02")
            await store.put_blob(repo, new.config)  # the push gets half-way ...
        server.stop()  # ... and the registry goes away before the layer and manifest
        async with RegistryStore(server.url, retry=fast_retry(), timeout=5) as store:
            with pytest.raises(RegistryError) as caught:
                await store.push(repo, new, tag="tt02")
        assert caught.value.status is None  # no response: connection refused
        server = LocalRegistry.start(tmp_path / "registry")  # same storage, new port
        async with RegistryStore(server.url) as store:
            assert await store.resolve(repo, "tt02") == old.digest
            assert await store.blob_exists(repo, config_digest(new))
            assert not await store.blob_exists(repo, layer_digest(new))
            # Finishing the push later moves the tag as usual.
            await store.push(repo, new, tag="tt02")
            assert await store.resolve(repo, "tt02") == new.digest
    finally:
        server.stop()


def config_digest(artifact: Any) -> str:
    return str(artifact.image.document["config"]["digest"])


def layer_digest(artifact: Any) -> str:
    return str(artifact.image.document["layers"][0]["digest"])


async def test_load_finds_and_stops_a_registry_started_elsewhere(tmp_path: Path) -> None:
    started = LocalRegistry.start(tmp_path / "r")
    loaded = LocalRegistry.load(tmp_path / "r")
    assert loaded is not None
    assert loaded.port == started.port
    assert loaded.running()
    loaded.stop()
    assert not started.running()
    assert not (tmp_path / "r" / "registry.json").exists()


# ---- Bearer tokens: the real registry in token mode, with a small token server of our own ----


class TokenServer(http.server.ThreadingHTTPServer):
    """Issues registry tokens (ES256, x5c) to one user, granting exactly the scopes asked for."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        super().__init__(("127.0.0.1", 0), TokenHandler)
        self.key = key
        self.cert = cert
        self.requests: list[list[str]] = []

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/token"


class TokenHandler(http.server.BaseHTTPRequestHandler):
    server: TokenServer
    credentials: ClassVar[str] = base64.b64encode(b"robot:s3cret").decode()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        scopes = query.get("scope", [])
        self.server.requests.append(scopes)
        if self.headers.get("Authorization") != f"Basic {self.credentials}":
            self.send_response(401)
            self.end_headers()
            return
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = dt.datetime.now(dt.UTC)
        claims = {
            "iss": "fjord-test-issuer",
            "sub": "robot",
            "aud": query["service"][0],
            "iat": now,
            "nbf": now - dt.timedelta(minutes=1),
            "exp": now + dt.timedelta(minutes=5),
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        x5c = base64.b64encode(self.server.cert.public_bytes(serialization.Encoding.DER))
        token = jwt.encode(
            claims, self.server.key, algorithm="ES256", headers={"x5c": [x5c.decode()]}
        )
        body = json.dumps({"token": token}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[LocalRegistry, TokenServer]]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fjord-test-token-issuer")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    bundle = tmp_path / "token-root.pem"
    bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tokens = TokenServer(key, cert)
    thread = threading.Thread(target=tokens.serve_forever, daemon=True)
    thread.start()
    auth = {
        "token": {
            "realm": tokens.realm,
            "service": "fjord-registry",
            "issuer": "fjord-test-issuer",
            "rootcertbundle": str(bundle),
        }
    }
    server = LocalRegistry.start(tmp_path / "registry", auth=auth)
    try:
        yield server, tokens
    finally:
        server.stop()
        tokens.shutdown()
        tokens.server_close()


async def test_bearer_token_flow(token_registry: tuple[LocalRegistry, TokenServer]) -> None:
    server, tokens = token_registry
    source, target = repo_name(), repo_name()
    artifact = build_artifact(FILES, source="s", revision="r")
    key = ec.generate_private_key(ec.SECP256R1())
    async with RegistryStore(server.url, username="robot", password="s3cret") as store:
        await store.push(source, artifact, tag="tt02")
        await sign(store, source, artifact.digest, Signer(key))
        await verify(store, source, artifact.digest, Trust(keys=[key.public_key()]))
        assert await store.put_blob(target, artifact.layer, mount_from=[source]) == (
            BlobOutcome.MOUNTED
        )
    # The registry lists a scope's actions in no fixed order (pull,push or push,pull).
    requested = [
        [(scope.rsplit(":", 1)[0], frozenset(scope.rsplit(":", 1)[1].split(","))) for scope in s]
        for s in tokens.requests
    ]
    assert [(f"repository:{source}", frozenset({"pull", "push"}))] in requested
    # The mount's challenge asks for pull on the source repository as well.
    assert any(
        f"repository:{source}:pull" in scopes for scopes in tokens.requests if len(scopes) == 2
    )


async def test_bearer_token_refused(token_registry: tuple[LocalRegistry, TokenServer]) -> None:
    server, _ = token_registry
    async with RegistryStore(server.url, username="robot", password="nope") as store:
        with pytest.raises(RegistryAuthError, match="401"):
            await store.resolve(repo_name(), "tt02")
