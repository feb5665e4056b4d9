"""The operators' probes for the kubelet: ``/healthz`` and ``/readyz`` on one small server.

``/healthz`` answers while the process's event loop runs (kopf's own liveness endpoint serves a
single path, so it is not used). ``/readyz`` answers 200 once kopf has run the operators'
startup handlers (each builds its runtime: the Kubernetes session, work queues) and its watches
are about to start, and 503 before. Both say only ``ok`` or why not, so they need no token.
"""

from __future__ import annotations

import asyncio

import aiohttp.web

HEALTHZ = "/healthz"
READYZ = "/readyz"


def application(ready: asyncio.Event) -> aiohttp.web.Application:
    async def healthz(_: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({"status": "ok"})

    async def readyz(_: aiohttp.web.Request) -> aiohttp.web.Response:
        if ready.is_set():
            return aiohttp.web.json_response({"status": "ok"})
        return aiohttp.web.json_response({"status": "starting"}, status=503)

    app = aiohttp.web.Application()
    app.add_routes([aiohttp.web.get(HEALTHZ, healthz), aiohttp.web.get(READYZ, readyz)])
    return app


async def start(host: str, port: int, ready: asyncio.Event) -> aiohttp.web.AppRunner:
    """Serve the probes until the returned runner is cleaned up."""
    runner = aiohttp.web.AppRunner(application(ready), handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await aiohttp.web.TCPSite(runner, host, port).start()
    return runner
