"""A raw HTTP client for the Git-source tests: they check status codes and error bodies
(422, 401, 404) as well as answers, which the typed client turns into exceptions."""

from __future__ import annotations

from typing import Any

import httpx2


class Client:
    """Calls to the real server over HTTP, as one token; ``call`` asserts the status."""

    def __init__(self, url: str, token: str) -> None:
        self.token = token
        self.http = httpx2.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300.0
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        response = await self.http.request(method, path, json=body)
        assert response.status_code == expect, (response.status_code, response.text)
        return response.json() if response.content else None
