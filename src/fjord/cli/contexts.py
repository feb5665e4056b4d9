"""The CLI's sign-ins: one context per fjord server, like kubectl's (``fjord context``).

A context holds the server's OpenID provider, its public client and the tokens ``fjord login``
got there; the file (``$FJORD_CONFIG`` or ``$XDG_CONFIG_HOME/fjord/config.json``) is written
with mode 0600. A command without ``--server``/``--token`` uses the current context; an ID token
that expired (or will within a minute) is refreshed first, and a token whose issuer is not the
context's provider is refused.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from fjord.api.oidc import Provider, TokenSet, unverified_claims
from fjord.control.settings import OidcSettings
from fjord.errors import FjordError

REFRESH_MARGIN_SECONDS = 60


class ContextError(FjordError):
    """No such context, or its tokens cannot be used or refreshed."""


def config_path() -> Path:
    configured = os.environ.get("FJORD_CONFIG")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fjord" / "config.json"


def context_name(server: str) -> str:
    return urlsplit(server).netloc or server


@dataclass
class Context:
    server: str
    issuer: str
    client_id: str
    scopes: list[str]
    id_token: str
    refresh_token: str | None
    expires_at: float

    def provider(self) -> Provider:
        return Provider(
            OidcSettings(
                issuer=self.issuer,
                client_id=self.client_id,
                client_secret="",
                scopes=tuple(self.scopes),
            )
        )

    def accept(self, tokens: TokenSet) -> None:
        """Take tokens from a sign-in or refresh, refusing another issuer's."""
        issuer = str(unverified_claims(tokens.id_token).get("iss", "")).rstrip("/")
        if issuer != self.issuer:
            raise ContextError(
                f"the token was issued by {issuer!r}, not by this server's provider {self.issuer}",
                hint="fjord login SERVER again",
            )
        self.id_token = tokens.id_token
        self.refresh_token = tokens.refresh_token or self.refresh_token
        self.expires_at = tokens.expires_at


@dataclass
class UserConfig:
    current: str | None = None
    contexts: dict[str, Context] = field(default_factory=dict)

    @classmethod
    def load(cls) -> UserConfig:
        path = config_path()
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text())
            contexts = {name: Context(**c) for name, c in data.get("contexts", {}).items()}
        except (ValueError, TypeError) as exc:
            raise ContextError(
                f"{path} is not a fjord CLI config: {exc}", hint="remove it and fjord login again"
            ) from exc
        return cls(current=data.get("current"), contexts=contexts)

    def save(self) -> None:
        path = config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "current": self.current,
            "contexts": {n: asdict(c) for n, c in self.contexts.items()},
        }
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
        temporary.replace(path)

    def find(self, server: str | None) -> tuple[str, Context] | None:
        """The context for ``server`` (None: the current one)."""
        if server is None:
            if self.current is None or self.current not in self.contexts:
                return None
            return self.current, self.contexts[self.current]
        wanted = server.rstrip("/")
        for name, context in self.contexts.items():
            if context.server.rstrip("/") == wanted:
                return name, context
        return None


async def fresh_token(config: UserConfig, name: str) -> str:
    """The context's ID token, refreshed (and saved) if it expires within a minute."""
    context = config.contexts[name]
    if context.expires_at - REFRESH_MARGIN_SECONDS > time.time():
        return context.id_token
    if context.refresh_token is None:
        raise ContextError(f"the sign-in to {context.server} expired", hint="fjord login again")
    try:
        tokens = await context.provider().refresh(context.refresh_token, context.client_id, None)
    except FjordError as exc:
        raise ContextError(
            f"refreshing the sign-in to {context.server} failed: {exc.message}",
            hint=f"fjord login {context.server}",
        ) from exc
    context.accept(tokens)
    config.save()
    return context.id_token
