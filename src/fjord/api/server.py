"""The API served by uvicorn from a background thread, on a loopback socket bound up front.

Binding first means the port is known before the app starts, so the control plane's public URL
(which clusters post events to) can name it. Used by tests and benchmarks; ``fjord serve``
runs uvicorn in the foreground instead.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace
from types import TracebackType
from typing import Self

import uvicorn

from fjord.api.app import create_app
from fjord.api.settings import ApiSettings

LOOPBACK = "127.0.0.1"


def bind_loopback(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    return sock


class ApiServer:
    def __init__(self, settings: ApiSettings, *, port: int = 0, startup_timeout: float = 60.0):
        self._sock = bind_loopback(port)
        self.url = f"http://{LOOPBACK}:{self._sock.getsockname()[1]}"
        # Clusters on this machine reach the control plane here.
        control = replace(settings.control, public_url=self.url)
        self.settings = replace(settings, control=control)
        self._timeout = startup_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        config = uvicorn.Config(
            create_app(self.settings), log_level="warning", access_log=False, lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the fjord API server stopped while starting")
            if time.monotonic() > deadline:
                raise TimeoutError("the fjord API server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
