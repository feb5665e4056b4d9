"""An OCI registry as a store, through a small client for the distribution API.

Only the parts of https://github.com/opencontainers/distribution-spec fjord needs:

* blobs: ``HEAD /v2/<name>/blobs/<digest>``; monolithic upload ``POST /v2/<name>/blobs/uploads/``
  then ``PUT <Location>&digest=<digest>``; cross-repository mount ``POST
  /v2/<name>/blobs/uploads/?mount=<digest>&from=<other>`` (201 = mounted, 202 = the registry
  opened a normal upload instead, which is then used);
* manifests: ``PUT``/``GET``/``HEAD /v2/<name>/manifests/<reference>`` with media types;
* tags: ``GET /v2/<name>/tags/list`` (paginated with ``Link``); deleting a tag uses ``DELETE
  /v2/<name>/manifests/<tag>`` where the registry supports it, and otherwise (Distribution 2.x)
  re-points the tag at a throw-away manifest and deletes that by digest, which removes the tag
  and leaves the real manifest untouched.

Auth follows the 401 challenge: ``Basic`` sends the configured credentials; ``Bearer`` fetches
a token from the challenge's realm with its service and scope (using the credentials, if any,
as Basic auth on the token request) and caches it per repository.

Transient failures (see :mod:`fjord.retry`: connection errors and timeouts, 408, 429, 500,
502-504) are retried with backoff honouring ``Retry-After`` within one overall deadline. Other
statuses are not retried and raise :class:`RegistryError` naming the registry, repository,
operation and status.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import httpx2

from fjord.artifact.digest import canonical_json, is_digest, sha256_digest
from fjord.artifact.oci import DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, image_manifest
from fjord.retry import Clock, RetryPolicy, Sleep, send_with_retries
from fjord.stores.base import BlobOutcome, NotFoundError, Store, StoreError

MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST])
_CHALLENGE_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')
_LINK_NEXT_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class RegistryError(StoreError):
    """A registry answered with an error status (or never answered)."""

    def __init__(
        self,
        registry: str,
        repository: str,
        operation: str,
        status: int | None,
        detail: str = "",
        *,
        hint: str | None = None,
    ) -> None:
        what = f"HTTP {status}" if status is not None else "no response"
        message = f"registry {registry}, repository {repository}: {operation} failed: {what}"
        if detail:
            message += f" ({detail})"
        super().__init__(message, hint=hint)
        self.registry = registry
        self.repository = repository
        self.operation = operation
        self.status = status


class RegistryAuthError(RegistryError):
    """401 or 403: missing or wrong credentials, or no permission on the repository."""


class RegistryNotFoundError(RegistryError, NotFoundError):
    """404 where the caller required the object to exist."""


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split ``WWW-Authenticate`` into its scheme (lower-case) and parameters."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM_RE.findall(rest))


def _error_detail(response: httpx2.Response) -> str:
    """The registry's error codes and messages, from the JSON error body if there is one."""
    try:
        body = response.json()
        errors = body.get("errors") or []
        parts = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors]
        return "; ".join(p for p in parts if p)
    except (ValueError, AttributeError):
        return response.reason_phrase


class RegistryStore(Store):
    """A store backed by an OCI distribution registry (``http://127.0.0.1:5000`` etc.)."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        parsed = urllib.parse.urlsplit(url if "://" in url else f"https://{url}")
        self.base_url = f"{parsed.scheme}://{parsed.netloc}"
        self.host = parsed.netloc
        self._credentials = (username, password) if username is not None else None
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._client = httpx2.AsyncClient(
            timeout=httpx2.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=True,  # blob GETs may redirect to a storage backend
            transport=transport,
        )
        # Authorization header per repository (token scopes are per repository); an asyncio
        # lock per store keeps concurrent requests from fetching the same token twice.
        self._auth: dict[str, str] = {}
        self._auth_lock = asyncio.Lock()

    def describe(self) -> str:
        return self.host

    def docker_reference(self, repository: str) -> str:
        return f"{self.host}/{repository}"

    async def aclose(self) -> None:
        await self._client.aclose()

    # ---- HTTP with retries and auth -------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        repository: str,
        operation: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx2.Response:
        """One logical request: retried on transient failures, re-sent once after a challenge."""
        reauthenticated = False

        async def attempt() -> httpx2.Response:
            nonlocal reauthenticated
            while True:
                request_headers = dict(headers or {})
                if repository in self._auth:
                    request_headers["Authorization"] = self._auth[repository]
                response = await self._client.request(
                    method, url, headers=request_headers, content=content, params=params
                )
                if response.status_code != 401 or reauthenticated:
                    return response
                reauthenticated = True
                await self._authenticate(response, repository, operation)

        try:
            return await send_with_retries(
                attempt, self._retry, sleep=self._sleep, clock=self._clock
            )
        except httpx2.TransportError as exc:
            raise RegistryError(
                self.host, repository, operation, None, f"{type(exc).__name__}: {exc}"
            ) from exc

    async def _authenticate(
        self, challenge: httpx2.Response, repository: str, operation: str
    ) -> None:
        header = challenge.headers.get("WWW-Authenticate", "")
        scheme, params = parse_challenge(header)
        async with self._auth_lock:
            if scheme == "basic":
                if self._credentials is None:
                    raise RegistryAuthError(
                        self.host,
                        repository,
                        operation,
                        401,
                        "the registry wants credentials",
                        hint="configure a username and password for this registry",
                    )
                user, password = self._credentials
                token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
                self._auth[repository] = f"Basic {token}"
            elif scheme == "bearer" and params.get("realm"):
                self._auth[repository] = f"Bearer {await self._fetch_token(params, repository)}"
            else:
                raise RegistryAuthError(
                    self.host, repository, operation, 401, f"unsupported challenge {header!r}"
                )

    async def _fetch_token(self, params: Mapping[str, str], repository: str) -> str:
        query: dict[str, str | list[str]] = {}
        if params.get("service"):
            query["service"] = params["service"]
        # A challenge may carry several space-separated scopes (e.g. for a mount).
        scopes = params.get("scope", "").split()
        if scopes:
            query["scope"] = scopes
        auth = None
        if self._credentials is not None:
            auth = httpx2.BasicAuth(self._credentials[0], self._credentials[1] or "")
        operation = f"token request to {params['realm']}"

        async def attempt() -> httpx2.Response:
            return await self._client.get(params["realm"], params=query, auth=auth)

        try:
            response = await send_with_retries(
                attempt, self._retry, sleep=self._sleep, clock=self._clock
            )
        except httpx2.TransportError as exc:
            raise RegistryError(self.host, repository, operation, None, str(exc)) from exc
        if response.status_code in (401, 403):
            raise RegistryAuthError(
                self.host,
                repository,
                operation,
                response.status_code,
                _error_detail(response),
                hint="check the registry credentials",
            )
        if response.status_code != 200:
            raise RegistryError(
                self.host, repository, operation, response.status_code, _error_detail(response)
            )
        body: dict[str, Any] = response.json()
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(self.host, repository, operation, 200, "no token in answer")
        return token

    def _fail(self, response: httpx2.Response, repository: str, operation: str) -> RegistryError:
        status = response.status_code
        detail = _error_detail(response)
        if status in (401, 403):
            return RegistryAuthError(
                self.host,
                repository,
                operation,
                status,
                detail,
                hint="check the registry credentials and the account's access to the repository",
            )
        if status == 404:
            return RegistryNotFoundError(self.host, repository, operation, status, detail)
        return RegistryError(self.host, repository, operation, status, detail)

    def _url(self, repository: str, *parts: str) -> str:
        return "/".join([self.base_url, "v2", repository, *parts])

    # ---- blobs -----------------------------------------------------------------------------

    async def _blob_exists(self, repository: str, digest: str) -> bool:
        operation = f"HEAD blob {digest}"
        response = await self._send(
            "HEAD", self._url(repository, "blobs", digest), repository, operation
        )
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._fail(response, repository, operation)

    async def _put_blob(
        self, repository: str, digest: str, data: bytes, mount_from: Sequence[str]
    ) -> BlobOutcome:
        if await self._blob_exists(repository, digest):
            return BlobOutcome.EXISTS
        location: str | None = None
        for source in mount_from:
            operation = f"mount blob {digest} from {source}"
            response = await self._send(
                "POST",
                self._url(repository, "blobs", "uploads/"),
                repository,
                operation,
                params={"mount": digest, "from": source},
            )
            if response.status_code == 201:
                return BlobOutcome.MOUNTED
            if response.status_code != 202:
                raise self._fail(response, repository, operation)
            # 202: the registry could not mount and opened an ordinary upload session instead.
            location = response.headers.get("Location")
            break
        for attempt in range(2):
            if location is None:
                location = await self._start_upload(repository, digest)
            operation = f"upload blob {digest}"
            response = await self._send(
                "PUT",
                self._upload_url(location, digest),
                repository,
                operation,
                headers={"Content-Type": "application/octet-stream"},
                content=data,
            )
            if response.status_code == 201:
                return BlobOutcome.UPLOADED
            if response.status_code == 404 and attempt == 0:
                # The upload session vanished (e.g. a registry restart after a 5xx); a fresh
                # session is safe because nothing was committed.
                location = None
                continue
            raise self._fail(response, repository, operation)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _start_upload(self, repository: str, digest: str) -> str:
        operation = f"start upload of blob {digest}"
        response = await self._send(
            "POST", self._url(repository, "blobs", "uploads/"), repository, operation
        )
        location = response.headers.get("Location")
        if response.status_code != 202 or not location:
            raise self._fail(response, repository, operation)
        return location

    def _upload_url(self, location: str, digest: str) -> str:
        url = urllib.parse.urljoin(self.base_url + "/", location)
        separator = "&" if urllib.parse.urlsplit(url).query else "?"
        return f"{url}{separator}digest={urllib.parse.quote(digest)}"

    async def _get_blob(self, repository: str, digest: str) -> bytes | None:
        operation = f"GET blob {digest}"
        response = await self._send(
            "GET", self._url(repository, "blobs", digest), repository, operation
        )
        if response.status_code == 200:
            return response.content
        if response.status_code == 404:
            return None
        raise self._fail(response, repository, operation)

    # ---- manifests and tags ----------------------------------------------------------------

    async def _put_manifest_at(
        self, repository: str, reference: str, manifest: bytes, media_type: str
    ) -> None:
        operation = f"PUT manifest {reference}"
        response = await self._send(
            "PUT",
            self._url(repository, "manifests", reference),
            repository,
            operation,
            headers={"Content-Type": media_type},
            content=manifest,
        )
        if response.status_code != 201:
            raise self._fail(response, repository, operation)
        returned = response.headers.get("Docker-Content-Digest")
        if returned and returned != sha256_digest(manifest):
            raise RegistryError(
                self.host,
                repository,
                operation,
                201,
                f"registry stored digest {returned}, expected {sha256_digest(manifest)}",
            )

    async def _put_manifest(
        self, repository: str, digest: str, manifest: bytes, media_type: str
    ) -> None:
        await self._put_manifest_at(repository, digest, manifest, media_type)

    async def _get_manifest(self, repository: str, reference: str) -> bytes | None:
        operation = f"GET manifest {reference}"
        response = await self._send(
            "GET",
            self._url(repository, "manifests", reference),
            repository,
            operation,
            headers={"Accept": MANIFEST_ACCEPT},
        )
        if response.status_code == 200:
            return response.content
        if response.status_code == 404:
            return None
        raise self._fail(response, repository, operation)

    async def _set_tag(
        self, repository: str, tag: str, digest: str, manifest: bytes, media_type: str
    ) -> None:
        await self._put_manifest_at(repository, tag, manifest, media_type)

    async def _resolve(self, repository: str, tag: str) -> str | None:
        operation = f"HEAD manifest {tag}"
        url = self._url(repository, "manifests", tag)
        headers = {"Accept": MANIFEST_ACCEPT}
        response = await self._send("HEAD", url, repository, operation, headers=headers)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(response, repository, operation)
        digest = response.headers.get("Docker-Content-Digest")
        if digest and is_digest(digest):
            return digest
        # Registries need not send the header; hashing the manifest is authoritative anyway.
        manifest = await self._get_manifest(repository, tag)
        return sha256_digest(manifest) if manifest is not None else None

    async def _list_tags(self, repository: str) -> list[str]:
        operation = "list tags"
        url: str | None = self._url(repository, "tags", "list") + "?n=1000"
        tags: list[str] = []
        while url is not None:
            response = await self._send("GET", url, repository, operation)
            if response.status_code == 404:
                return tags
            if response.status_code != 200:
                raise self._fail(response, repository, operation)
            tags.extend(response.json().get("tags") or [])
            match = _LINK_NEXT_RE.search(response.headers.get("Link", ""))
            url = urllib.parse.urljoin(self.base_url + "/", match.group(1)) if match else None
        return tags

    async def _delete_manifest(self, repository: str, reference: str) -> int:
        operation = f"DELETE manifest {reference}"
        url = self._url(repository, "manifests", reference)
        response = await self._send("DELETE", url, repository, operation)
        if response.status_code in (200, 202, 404):
            return response.status_code
        if response.status_code in (400, 405) and not is_digest(reference):
            return response.status_code  # tag deletion unsupported; the caller falls back
        raise self._fail(response, repository, operation)

    async def _delete_tag(self, repository: str, tag: str) -> bool:
        if await self._resolve(repository, tag) is None:
            return False
        status = await self._delete_manifest(repository, tag)
        if status in (200, 202):
            return True
        # Distribution 2.x cannot delete a tag, only a manifest (with all its tags). Point the
        # tag at a unique throw-away manifest, then delete that manifest by digest.
        config = canonical_json({})
        await self._put_blob(repository, sha256_digest(config), config, ())
        placeholder = image_manifest(
            OCI_CONFIG, config, [], {"dev.fjord.deleted-tag": f"{repository}:{tag}"}
        )
        await self._put_manifest_at(repository, tag, placeholder, OCI_MANIFEST)
        await self._delete_manifest(repository, sha256_digest(placeholder))
        return True
