"""A non-blocking hand-off of namespaces from reconcilers to a background sweeper (the janitor).

``nudge`` never waits and never fails, so a reconcile is never held up by the janitor; repeated
nudges for one namespace collapse into one pending entry (the set is bounded by the namespaces).
"""

from __future__ import annotations

import asyncio


class Nudges:
    def __init__(self) -> None:
        self._pending: set[str] = set()
        self._event = asyncio.Event()

    def nudge(self, namespace: str) -> None:
        self._pending.add(namespace)
        self._event.set()

    async def take(self, timeout: float) -> set[str]:
        """The namespaces nudged so far (waiting up to ``timeout`` seconds for the first)."""
        if not self._pending:
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except TimeoutError:
                return set()
        taken, self._pending = self._pending, set()
        self._event.clear()
        return taken
