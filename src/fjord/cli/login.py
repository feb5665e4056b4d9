"""``fjord login [SERVER]`` and ``fjord context list|use``.

Login is the OAuth 2.0 flow for native apps (RFC 8252): a one-shot HTTP listener on a random
loopback port receives the provider's redirect; PKCE protects the code, the state ties the
answer to this attempt. The browser opens by itself unless ``FJORD_LOGIN_BROWSER=none`` (then,
as always, the URL is printed to stderr).
"""

from __future__ import annotations

import asyncio
import http.server
import os
import threading
import urllib.parse
import webbrowser
from typing import Annotated, Any

import httpx2
import typer
from rich.table import Table

from fjord.api.oidc import Flow, new_flow
from fjord.cli.client import EXIT_DENIED, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_UNREACHABLE
from fjord.cli.contexts import Context, ContextError, UserConfig, context_name
from fjord.cli.output import Output, OutputOption, emit_json, err, fail, out
from fjord.errors import FjordError

LOGIN_TIMEOUT_SECONDS = 300.0
DEFAULT_SERVER = "http://127.0.0.1:8650"

context_app = typer.Typer(help="Signed-in servers (fjord login); like kubectl's contexts.")


class _Callback(http.server.BaseHTTPRequestHandler):
    result: dict[str, str]
    done: threading.Event

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path != "/callback":
            self.send_error(404)
            return
        query = dict(urllib.parse.parse_qsl(parsed.query))
        type(self).result.update(query)
        ok = "code" in query
        body = (
            "Signed in to fjord; you may close this window."
            if ok
            else f"Sign-in failed: {query.get('error_description') or query.get('error')}"
        ).encode()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        type(self).done.set()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log on the user's terminal


def _await_code(flow: Flow, open_url: str, server: http.server.HTTPServer) -> str:
    handler: Any = server.RequestHandlerClass
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        err.print("Sign in here:", highlight=False)
        err.print(open_url, highlight=False, markup=False, soft_wrap=True)
        if os.environ.get("FJORD_LOGIN_BROWSER", "").lower() != "none":
            webbrowser.open(open_url)
        if not handler.done.wait(LOGIN_TIMEOUT_SECONDS):
            raise fail("no sign-in within five minutes", EXIT_DENIED)
    finally:
        server.shutdown()
        server.server_close()
    result: dict[str, str] = handler.result
    if "code" not in result:
        raise fail(
            f"the provider refused: {result.get('error_description') or result}", EXIT_DENIED
        )
    if result.get("state") != flow.state:
        raise fail("the provider's answer belongs to another sign-in (state)", EXIT_DENIED)
    return result["code"]


def _auth_config(server: str) -> dict[str, Any]:
    try:
        response = httpx2.get(f"{server}/api/auth/config", timeout=10.0)
    except httpx2.HTTPError as exc:
        raise fail(f"{server} is unreachable: {exc}", EXIT_UNREACHABLE) from exc
    if response.status_code != 200:
        raise fail(f"{server} is not a fjord server ({response.status_code})", EXIT_INVALID)
    config: dict[str, Any] = response.json()
    if not config.get("issuer") or not config.get("client_id"):
        raise fail(
            f"{server} has no sign-in configured; use an API token (--token / FJORD_TOKEN)",
            EXIT_INVALID,
        )
    return config


async def _sign_in(server: str, config: dict[str, Any]) -> Context:
    context = Context(
        server=server,
        issuer=str(config["issuer"]).rstrip("/"),
        client_id=str(config["client_id"]),
        scopes=[str(s) for s in config["scopes"]],
        id_token="",
        refresh_token=None,
        expires_at=0.0,
    )
    provider = context.provider()
    flow = new_flow()

    class Handler(_Callback):
        result: dict[str, str] = {}  # noqa: RUF012 (one per sign-in: a fresh class)
        done = threading.Event()

    listener = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    redirect = f"http://127.0.0.1:{listener.server_address[1]}/callback"
    url = await provider.authorization_url(flow, redirect, context.client_id)
    code = await asyncio.to_thread(_await_code, flow, url, listener)
    tokens = await provider.exchange(code, flow, redirect, context.client_id, None)
    await provider.verify(tokens.id_token, nonce=flow.nonce, audiences=[context.client_id])
    context.accept(tokens)
    return context


def login(
    server: Annotated[str, typer.Argument(help="the fjord server's URL")] = DEFAULT_SERVER,
) -> None:
    """Sign in to a fjord server through its OpenID provider; it becomes the current context."""
    server = server.rstrip("/")
    config = _auth_config(server)
    try:
        context = asyncio.run(_sign_in(server, config))
    except FjordError as exc:
        raise fail(exc.message, EXIT_DENIED) from exc
    user = UserConfig.load()
    name = context_name(server)
    user.contexts[name] = context
    user.current = name
    user.save()
    err.print(f"signed in to {server} (context {name})", highlight=False, markup=False)


@context_app.command("list")
def list_contexts(output: Output = OutputOption) -> None:
    """The servers signed in to; * marks the current one."""
    try:
        user = UserConfig.load()
    except ContextError as exc:
        raise fail(exc.message, EXIT_INVALID) from exc
    if output == Output.json:
        emit_json(
            [
                {"name": n, "server": c.server, "issuer": c.issuer, "current": n == user.current}
                for n, c in user.contexts.items()
            ]
        )
        return
    table = Table("", "NAME", "SERVER", "PROVIDER")
    for name, context in user.contexts.items():
        table.add_row("*" if name == user.current else "", name, context.server, context.issuer)
    out.print(table)


@context_app.command("use")
def use_context(
    name: Annotated[str, typer.Argument(help="a context from fjord context list")],
) -> None:
    """Make NAME the current context."""
    user = UserConfig.load()
    if name not in user.contexts:
        raise fail(f"no context {name!r}; fjord context list shows them", EXIT_NOT_FOUND)
    user.current = name
    user.save()
    err.print(f"current context: {name}", highlight=False, markup=False)
