"""The long-lived parts every operator shares: its connection, work queues, tasks and predicates.

An operator's ``handlers.py`` (the only module that knows kopf) creates one :class:`Runtime` at
registration, lets its ``setup`` module fill it at kopf's startup (connect, add controllers and
background tasks), hands every watch event to :meth:`Runtime.route`, and calls
:meth:`Runtime.stop` at cleanup. Watch events only decide *whether* to enqueue (the predicates
below); the reconcile always reads the latest body seen.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from fjord.kube import Kube
from fjord.operators.common.controller import Controller, Reconcile
from fjord.operators.common.kubeapi import CountingKube
from fjord.operators.common.runner import OperatorContext

Key = tuple[str, str]
"""A namespaced object's ``(namespace, name)``: the work queues' key."""

Predicate = Callable[[Mapping[str, Any] | None, Mapping[str, Any]], bool]
"""``wanted(previous body or None, new body)``: whether a watch event deserves a reconcile."""


def key_of(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))


def needs_reconcile(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether a watch event of a custom resource asks for a reconcile (aivenator's predicates).

    Yes for a new object, a spec change (generation), labels, annotations (``fjord.dev/rotate``),
    deletion, and a status changed to one that is not ours for this generation (cleared or
    edited: resync). No for the event of the operator's own status write, nor for other changes
    (e.g. the reconcile's own finalizer patch, which comes back before its first status write:
    reconciling it again would repeat every call of a pass that is still running).
    """
    if old is None:
        return True
    before, after = old.get("metadata") or {}, new.get("metadata") or {}
    for field in ("generation", "labels", "annotations", "deletionTimestamp"):
        if before.get(field) != after.get(field):
            return True
    status = new.get("status") or {}
    if status == (old.get("status") or {}):
        return False
    return status.get("observedGeneration") != after.get("generation") or not status.get(
        "conditions"
    )


def finalizing(finalizer: str) -> Predicate:
    """Reconcile an object only while it is being deleted and still carries ``finalizer``."""

    def wanted(_: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
        meta = new.get("metadata") or {}
        return bool(meta.get("deletionTimestamp")) and finalizer in (meta.get("finalizers") or [])

    return wanted


class Runtime:
    """One operator's connection, controllers and background tasks, started and stopped together."""

    def __init__(self, name: str, context: OperatorContext) -> None:
        self.name = name
        self.context = context
        self.controllers: dict[str, Controller] = {}
        self._kube: CountingKube | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closers: list[Callable[[], Awaitable[Any]]] = []
        self._forgetters: dict[str, Callable[[Key], None]] = {}

    async def connect(self) -> CountingKube:
        """The operator's Kubernetes session (one per operator), its requests counted."""
        if self._kube is None:
            kube = await Kube.connect(self.context.kubeconfig)
            self._kube = CountingKube(kube, self.context.metrics, self.name)
        return self._kube

    @property
    def kube(self) -> CountingKube:
        if self._kube is None:
            raise RuntimeError(f"the {self.name} operator is not started")
        return self._kube

    def controller(
        self,
        name: str,
        reconcile: Reconcile,
        *,
        workers: int,
        permanent_retry: float = 3600.0,
        on_forget: Callable[[Key], None] | None = None,
    ) -> Controller:
        """Start a work queue named ``name`` (also its metrics label) running ``reconcile``.

        ``on_forget(key)`` drops per-object state kept outside the queue when the object is gone.
        """
        controller = Controller(
            name, reconcile, self.context.metrics, workers=workers, permanent_retry=permanent_retry
        )
        controller.start()
        self.controllers[name] = controller
        if on_forget is not None:
            self._forgetters[name] = on_forget
        return controller

    def task(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run ``work`` in the background until :meth:`stop`."""
        self._tasks.append(asyncio.create_task(work, name=name))

    def on_stop(self, close: Callable[[], Awaitable[Any]]) -> None:
        """Call ``close`` at :meth:`stop`, after the controllers and tasks have stopped."""
        self._closers.append(close)

    async def stop(self) -> None:
        for controller in self.controllers.values():
            await controller.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for close in reversed(self._closers):
            await close()
        if self._kube is not None:
            await self._kube.kube.close()

    def route(
        self,
        controller: str,
        event_type: str | None,
        body: Mapping[str, Any],
        *,
        wanted: Predicate,
    ) -> Key | None:
        """Hand one watch event to ``controller``: forget, enqueue or only remember the body.

        Returns the key of a deleted object (for follow-up work such as a janitor nudge).
        """
        queue = self.controllers.get(controller)
        if queue is None:  # not started yet (kopf starts watching after startup handlers)
            return None
        key = key_of(body)
        if event_type == "DELETED":
            queue.forget(key)
            if controller in self._forgetters:
                self._forgetters[controller](key)
            return key
        latest, previous = dict(body), queue.latest(key)
        if wanted(previous, latest):
            queue.enqueue(key, latest)
        elif previous is not None:
            # e.g. our own status write coming back: keep the newest body for the run already
            # scheduled, so a backoff stays a backoff. Unknown, unwanted objects are not kept.
            queue.remember(key, latest)
        return None

    def requeue(self, controller: str, key: Key) -> None:
        """Reconcile a known object soon with its last body (e.g. a Secret it owns changed)."""
        queue = self.controllers.get(controller)
        if queue is not None:
            queue.enqueue(key)  # a no-op for a key the queue has never seen
