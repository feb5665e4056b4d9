"""The registry client's retries and error reporting, against a tiny loopback HTTP server.

The server is fjord's own test double of a flaky registry endpoint: it answers a scripted
sequence of statuses, then 200, and counts the requests.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from fjord.stores import NotFoundError, RegistryError, RegistryStore, RetryPolicy
from fjord.stores.registry import parse_challenge

DIGEST = "sha256:" + "cd" * 32


class FlakyServer(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FlakyHandler)
        self.script: list[tuple[int, dict[str, str]]] = []
        self.requests = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    server: FlakyServer

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_HEAD(self) -> None:
        with self.server.lock:
            self.server.requests += 1
            status, headers = self.server.script.pop(0) if self.server.script else (200, {})
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD  # the scripted statuses apply to any method


@pytest.fixture
def flaky() -> Iterator[FlakyServer]:
    server = FlakyServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def quick(attempts: int = 5) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, initial_delay=0.001, max_delay=0.01)


async def test_429_and_5xx_are_retried(flaky: FlakyServer) -> None:
    flaky.script = [(429, {"Retry-After": "0"}), (500, {}), (503, {}), (429, {})]
    async with RegistryStore(flaky.url, retry=quick()) as store:
        assert await store.blob_exists("ttd/app", DIGEST)
    assert flaky.requests == 5


async def test_retries_give_up_with_the_last_status(flaky: FlakyServer) -> None:
    flaky.script = [(502, {})] * 10
    async with RegistryStore(flaky.url, retry=quick(attempts=3)) as store:
        with pytest.raises(RegistryError) as caught:
            await store.blob_exists("ttd/app", DIGEST)
    assert caught.value.status == 502
    assert caught.value.repository == "ttd/app"
    assert flaky.requests == 3


@pytest.mark.parametrize("status", [400, 403])
async def test_client_errors_are_not_retried(flaky: FlakyServer, status: int) -> None:
    flaky.script = [(status, {})]
    async with RegistryStore(flaky.url, retry=quick()) as store:
        with pytest.raises(RegistryError) as caught:
            await store.blob_exists("ttd/app", DIGEST)
    assert caught.value.status == status
    assert flaky.requests == 1


async def test_404_on_a_required_object_is_not_found(flaky: FlakyServer) -> None:
    flaky.script = [(404, {})]
    async with RegistryStore(flaky.url, retry=quick()) as store:
        assert not await store.blob_exists("ttd/app", DIGEST)
    flaky.script = [(404, {})] * 3
    async with RegistryStore(flaky.url, retry=quick()) as store:
        with pytest.raises(NotFoundError, match="not found"):
            await store.get_blob("ttd/app", DIGEST)
    assert flaky.requests == 2


async def test_connection_refused_is_retried_then_reported(flaky: FlakyServer) -> None:
    url = flaky.url
    flaky.shutdown()
    flaky.server_close()
    async with RegistryStore(url, retry=quick(attempts=3), timeout=5) as store:
        with pytest.raises(RegistryError, match="no response") as caught:
            await store.blob_exists("ttd/app", DIGEST)
    assert caught.value.status is None


def test_challenge_parsing() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a:pull,push repository:b:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a:pull,push repository:b:pull",
    }
    assert parse_challenge('Basic realm="fjord"') == ("basic", {"realm": "fjord"})
