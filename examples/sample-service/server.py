"""The sample apps' HTTP service: a small real app that uses what the platform gives it.

At start and on every ``GET /health/ready`` it

* gets a Maskinporten token with fjord's token client, from the Secret the Maskinporten
  operator mounts under ``/var/run/secrets/fjord/maskinporten``;
* uses its backing service with the credentials operator's Secret: a query on each PostgreSQL
  database mounted under ``/var/run/secrets/fjord/postgresql/<name>``, or a counter key under its
  prefix in Redis (``/var/run/secrets/fjord/redis``);

and answers every other ``GET`` with a JSON report of what it used: the token's scopes and
lifetime, the database user and the query's answer, the Redis key and its value. Secret values
(passwords, URLs with passwords, the token itself) never appear in a response or a log line.

The image runs it as an unprivileged user on a read-only root filesystem: it writes nothing.
Configuration: ``PORT`` (default 8080), ``APP_NAME``, ``APP_VERSION`` and ``GREETING`` from the
environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SECRETS = Path(os.environ.get("FJORD_SECRETS_DIR", "/var/run/secrets/fjord"))
_loop = asyncio.new_event_loop()
_maskinporten: Any = None


def _read(directory: Path, key: str) -> str:
    return (directory / key).read_text().strip()


def _token() -> dict[str, Any] | None:
    """A token from the emulator via fjord's client (cached by the client until near expiry)."""
    directory = SECRETS / "maskinporten"
    if not directory.is_dir():
        return None
    global _maskinporten
    if _maskinporten is None:
        from fjord.maskinporten.client import MaskinportenClient

        _maskinporten = MaskinportenClient.from_directory(str(directory))
    token = asyncio.run_coroutine_threadsafe(_maskinporten.get_token(), _loop).result(30)
    return {
        "obtained": True,
        # Which client the operator registered for the app (an id, not a secret).
        "client_id": _maskinporten.settings.client_id,
        "scope": token.scope,
        "expires_in": token.expires_in,
        "token_type": token.token_type,
    }


QUERY = "SELECT session_user, current_user, current_database()"


def _postgresql() -> list[dict[str, Any]]:
    root = SECRETS / "postgresql"
    if not root.is_dir():
        return []
    import psycopg

    used = []
    for directory in sorted(p for p in root.iterdir() if p.is_dir()):
        with psycopg.connect(_read(directory, "url"), connect_timeout=5) as conn:
            row = conn.execute(QUERY).fetchone() or ("", "", "")
        used.append(
            {
                "database": directory.name,
                "query": QUERY,
                # The login user (the operator's credentials); the role it acts as may differ.
                "user": row[0],
                "role": row[1],
                "current_database": row[2],
            }
        )
    return used


def _redis() -> dict[str, Any] | None:
    directory = SECRETS / "redis"
    if not directory.is_dir():
        return None
    import redis

    prefix = _read(directory, "keyPrefix")
    client = redis.Redis.from_url(_read(directory, "url"), socket_timeout=5)
    try:
        key = f"{prefix}readiness-checks"
        value = int(client.incr(key))
    finally:
        client.close()
    return {"user": _read(directory, "username"), "key": key, "value": value}


def report() -> dict[str, Any]:
    """Use everything the app has and say what was used (raises if any of it fails)."""
    return {
        "app": os.environ.get("APP_NAME", "sample"),
        "version": os.environ.get("APP_VERSION", "dev"),
        "greeting": os.environ.get("GREETING", "hello"),
        "pod": os.environ.get("HOSTNAME", ""),
        "maskinporten": _token(),
        "postgresql": _postgresql(),
        "redis": _redis(),
        "checked_at": int(time.time()),
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "fjord-sample"

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, {"status": "alive"})
            return
        try:
            body = report()
        except Exception as exc:  # the reason, never a secret: exception types and messages
            self._send(503, {"status": "not ready", "error": type(exc).__name__})
            print(f"check failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return
        self._send(200, {"status": "ready", **body} if self.path == "/health/ready" else body)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, indent=2).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.path.startswith("/health"):
            super().log_message(format, *args)


def main() -> None:
    threading.Thread(target=_loop.run_forever, daemon=True).start()
    port = int(os.environ.get("PORT", "8080"))
    # Listen first: the probes get an answer (503 until ready) while the start-up check runs.
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)  # noqa: S104 (inside its Pod)
    print(f"serving on :{port}", flush=True)
    threading.Thread(target=_startup_check, daemon=True).start()
    server.serve_forever()


def _startup_check() -> None:
    try:
        print(json.dumps(report()), flush=True)
    except Exception as exc:
        print(f"start-up check failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
