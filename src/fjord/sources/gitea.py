"""The part of Gitea's API fjord calls: webhooks on a repository, commit statuses, and the
check of a delivery's signature.

One small async client with retries (transient statuses and network errors, backoff with full
jitter); everything else about Gitea stays out of the control plane.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx2

from fjord.retry import RetryPolicy, send_with_retries
from fjord.sources.errors import SourceError

# Gitea's commit status states fjord uses, from a deployment's state.
STATUS_PENDING = "pending"
STATUS_SUCCESS = "success"
STATUS_FAILURE = "failure"
STATUS_CONTEXT = "fjord/deploy"


class GiteaApiError(SourceError):
    """Gitea answered a call with an error (after retries for transient ones)."""


def verify_signature(secret: str, body: bytes, signature: str | None) -> bool:
    """Gitea's ``X-Gitea-Signature``: hex HMAC-SHA256 of the raw body with the hook's secret."""
    if not signature:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def sign(secret: str, body: bytes) -> str:
    """What Gitea would send for ``body`` (for tests and tools)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def repository_of(clone_url: str, gitea_url: str) -> str | None:
    """``org/name`` of a clone URL on this Gitea; None when the URL is on another server."""
    clone, base = urlsplit(clone_url), urlsplit(gitea_url)
    if (clone.hostname, clone.port) != (base.hostname, base.port):
        return None
    path = clone.path.removeprefix(base.path.rstrip("/")).strip("/").removesuffix(".git")
    parts = path.split("/")
    return path if len(parts) == 2 and all(parts) else None


def _web_base(clone_url: str) -> str:
    """The repository's web page from its clone URL (Gitea's, and GitHub's, URL layout)."""
    base = clone_url.split("://", 1)[-1].split("@")[-1]  # no credentials, ever
    scheme = clone_url.split("://", 1)[0] if "://" in clone_url else "https"
    return f"{scheme}://{base.removesuffix('/').removesuffix('.git')}"


def commit_url(clone_url: str, commit: str) -> str:
    """The commit's page on the Git server."""
    return f"{_web_base(clone_url)}/commit/{commit}"


def compare_url(clone_url: str, old: str, new: str) -> str:
    """The Git server's page of the commits from ``old`` to ``new`` and their diff."""
    return f"{_web_base(clone_url)}/compare/{old}...{new}"


@dataclass(frozen=True)
class Gitea:
    """Gitea at ``url`` with an API token allowed to manage the repositories' hooks and statuses."""

    url: str
    token: str
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=4, deadline=20.0))
    timeout: float = 20.0

    async def _call(
        self, method: str, path: str, body: Any = None, *, idempotent: bool = True
    ) -> Any:
        async with httpx2.AsyncClient(
            base_url=f"{self.url.rstrip('/')}/api/v1",
            headers={"Authorization": f"token {self.token}"},
            timeout=self.timeout,
        ) as client:
            try:
                response = await send_with_retries(
                    lambda: client.request(method, path, json=body),
                    self.retry,
                    idempotent=idempotent,
                )
            except httpx2.TransportError as exc:
                raise GiteaApiError(f"Gitea {method} {path}: {exc or type(exc).__name__}") from exc
        if response.status_code >= 300:
            raise GiteaApiError(
                f"Gitea {method} {path}: {response.status_code} {response.text[:300]}",
                hint="check that fjord's Gitea token may administer the repository",
            )
        return response.json() if response.content else None

    async def create_hook(self, repository: str, target: str, secret: str) -> int:
        """A push/create webhook on ``repository`` delivering JSON to ``target``; its id."""
        hook = await self._call(
            "POST",
            f"/repos/{repository}/hooks",
            {
                "type": "gitea",
                "active": True,
                "events": ["push", "create"],
                "branch_filter": "*",
                "config": {"url": target, "content_type": "json", "secret": secret},
            },
            idempotent=False,  # a second hook would deliver everything twice
        )
        return int(hook["id"])

    async def delete_hook(self, repository: str, hook_id: int) -> None:
        await self._call("DELETE", f"/repos/{repository}/hooks/{hook_id}")

    async def set_status(
        self,
        repository: str,
        commit: str,
        state: str,
        description: str,
        target_url: str,
        *,
        context: str = STATUS_CONTEXT,
    ) -> None:
        await self._call(
            "POST",
            f"/repos/{repository}/statuses/{commit}",
            {
                "state": state,
                "context": context,
                "description": description[:250],
                "target_url": target_url,
            },
        )

    async def statuses(self, repository: str, ref: str) -> list[dict[str, Any]]:
        found = await self._call("GET", f"/repos/{repository}/commits/{ref}/status")
        return list(found.get("statuses") or [])
