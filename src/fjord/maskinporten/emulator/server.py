"""Run the emulator: in a background thread for tests (``EmulatorServer``) or in the foreground.

A thread rather than a subprocess because tests then share the ``EmulatorState`` object: they
can move the clock or read counters directly, startup costs no interpreter boot, and nothing can
outlive the test process. The socket is bound before the issuer is fixed, so port 0 works and the
issuer (which includes the port) is known before the first request.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import httpx2
import uvicorn

from fjord.maskinporten.emulator.app import WELL_KNOWN_PATH, create_app
from fjord.maskinporten.emulator.clock import EmulatorClock
from fjord.maskinporten.emulator.config import (
    EmulatorConfig,
    FaultConfig,
    ScopeDefinition,
    SupplierClient,
)
from fjord.maskinporten.emulator.state import EmulatorState

LOOPBACK = "127.0.0.1"


def bind_loopback(port: int = 0) -> socket.socket:
    """A listening-ready TCP socket on 127.0.0.1 (port 0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    return sock


def uvicorn_server(state: EmulatorState, log_level: str = "warning") -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(state), log_level=log_level, access_log=False, lifespan="off"
    )
    return uvicorn.Server(config)


class EmulatorServer:
    """An emulator on a free loopback port, served from a daemon thread.

    >>> with EmulatorServer(supplier=supplier) as emu:
    ...     emu.url, emu.issuer, emu.state.clock.advance(30)
    """

    def __init__(
        self,
        *,
        supplier: SupplierClient,
        port: int = 0,
        scopes: tuple[ScopeDefinition, ...] = (),
        allow_unknown_scopes: bool = False,
        faults: FaultConfig | None = None,
        seed: int | None = None,
        clock: EmulatorClock | None = None,
        signing_jwk: Mapping[str, Any] | None = None,
        startup_timeout: float = 15.0,
    ) -> None:
        self._supplier = supplier
        self._port = port
        self._scopes = scopes
        self._allow_unknown = allow_unknown_scopes
        self._faults = faults or FaultConfig()
        self._seed = seed
        self._clock = clock or EmulatorClock()
        self._signing_jwk = signing_jwk
        self._timeout = startup_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._state: EmulatorState | None = None
        self._sock: socket.socket | None = None

    # -- where it is ---------------------------------------------------------------------------

    @property
    def state(self) -> EmulatorState:
        if self._state is None:
            raise RuntimeError("the emulator is not started")
        return self._state

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the emulator is not started")
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        """Base URL without a trailing slash; the self-service API lives here too."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def issuer(self) -> str:
        return self.url + "/"

    @property
    def token_endpoint(self) -> str:
        return self.url + "/token"

    @property
    def well_known_url(self) -> str:
        return self.url + WELL_KNOWN_PATH

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("the emulator is already started")
        self._sock = bind_loopback(self._port)
        config = EmulatorConfig(
            issuer=f"http://{LOOPBACK}:{self.port}/",
            supplier=self._supplier,
            scopes=self._scopes,
            allow_unknown_scopes=self._allow_unknown,
            faults=self._faults,
            seed=self._seed,
            signing_jwk=self._signing_jwk,
        )
        self._state = EmulatorState(config, self._clock)
        self._server = uvicorn_server(self._state)
        sock = self._sock
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=[sock]), name="maskinporten-emulator", daemon=True
        )
        self._thread.start()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._timeout
        with httpx2.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self._thread is None or not self._thread.is_alive():
                    raise RuntimeError("the emulator thread exited during startup")
                with contextlib.suppress(httpx2.TransportError):
                    if http.get(self.well_known_url).status_code == 200:
                        return
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"the emulator did not answer within {self._timeout} s")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._thread = None
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
