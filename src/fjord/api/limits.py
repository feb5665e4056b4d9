"""A request-body size limit on every route (ASGI middleware): 413 with fjord's JSON error.

A declared ``Content-Length`` above the limit is refused before the app runs; a body without
one (chunked) is counted as it streams and refused once it passes the limit, so a client can
never make the server buffer more than the limit. FastAPI's own ``max_body_size`` does the
counting too, but answers plain text whenever a route replies without reading the body (a 401,
say), so clients would see two shapes for one error.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOO_LARGE_HINT = (
    "send a smaller body; an operator can raise the limit with fjord serve --max-body-bytes "
    "(FJORD_MAX_BODY_BYTES)"
)


def too_large_message(max_bytes: int) -> str:
    return f"the request body is larger than this server accepts ({max_bytes} bytes)"


class BodyTooLarge(HTTPException):
    """Raised from ``receive``: an HTTPException, so FastAPI's body parsing passes it on to the
    exception handlers (``errors.install`` renders it) instead of calling it a parse error."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def noting_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, noting_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {"error": too_large_message(self.max_bytes), "hint": TOO_LARGE_HINT}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            # Not a number: left to the HTTP server (h11 and httptools refuse it with 400).
            return int(text) if text.isdigit() and len(text) < 19 else None
    return None
