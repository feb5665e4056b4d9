"""Run fjord's operators in-process with kopf: ``fjord operator run``.

Every operator is a module ``fjord.operators.<name>.handlers`` with one function::

    def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None

which adds its handlers to the given registry (never kopf's global default registry), and keeps
its runtime state in objects it creates there or in ``context``. Modules are imported by name only
when selected, so a missing operator is a clear error, not an import failure of the others.

kopf runs standalone (no peering: one replica, ``Recreate`` deployment strategy), with the probes
of :mod:`.health` (``/healthz``, ``/readyz``), without kopf's own Event posting (operators post
their own, scrubbed) and without CRD scanning (so its RBAC needs no access to
CustomResourceDefinitions).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import kopf
import structlog
from prometheus_client import CollectorRegistry

from fjord.errors import FjordError
from fjord.operators.common import health
from fjord.operators.common.metrics import OperatorMetrics, serve
from fjord.operators.common.nudges import Nudges

OPERATORS = ("credentials", "janitor", "maskinporten", "workloads")
MANAGED_BY = "app.kubernetes.io/managed-by"

log = structlog.get_logger("fjord.operators")


@dataclass(frozen=True)
class OperatorContext:
    """What ``register`` gets: where to connect, what to watch, shared metrics and options.

    ``namespaces`` is empty when the operators watch all namespaces. ``options`` holds
    operator-specific settings (``credentials.admin-secret`` …) given on the command line.
    """

    kubeconfig: Path | None
    namespaces: tuple[str, ...]
    metrics: OperatorMetrics
    options: Mapping[str, str] = field(default_factory=dict)
    nudges: Nudges = field(default_factory=Nudges)
    secret_managers: set[str] = field(default_factory=set)

    def option(self, key: str, default: str | None = None) -> str | None:
        return self.options.get(key, default)

    def watch_secrets_of(self, manager: str) -> str:
        """The label selector of the Secrets watch, now including those ``manager`` labels.

        kopf runs one Secrets watch per process, filtered by one selector, while each operator
        labels its Secrets with its own ``app.kubernetes.io/managed-by``: the selector must be the
        union, or the first operator to set it hides the others' Secrets.
        """
        self.secret_managers.add(manager)
        return f"{MANAGED_BY} in ({','.join(sorted(self.secret_managers))})"


@dataclass(frozen=True)
class RunConfig:
    operators: tuple[str, ...] = OPERATORS
    namespaces: tuple[str, ...] = ()
    kubeconfig: Path | None = None
    liveness: str | None = "127.0.0.1:8080"
    metrics: str | None = "127.0.0.1:9090"
    options: Mapping[str, str] = field(default_factory=dict)


def load(name: str) -> ModuleType:
    """The handlers module of operator ``name`` (a clear error when it does not exist)."""
    if name not in OPERATORS:
        raise FjordError(f"unknown operator {name!r}", hint=f"choose from: {', '.join(OPERATORS)}")
    module_name = f"fjord.operators.{name}.handlers"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise FjordError(
                f"operator {name!r} is not available: module {module_name} does not exist",
                hint=f"leave it out with --only, e.g. --only {OPERATORS[0]}",
            ) from exc
        raise
    if not callable(getattr(module, "register", None)):
        raise FjordError(f"{module_name} has no register(registry, context) function")
    return module


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


def build(config: RunConfig, metrics: OperatorMetrics) -> tuple[kopf.OperatorRegistry, Any]:
    """The registry with every selected operator's handlers, and the context they got."""
    modules = [load(name) for name in dict.fromkeys(config.operators)]
    context = OperatorContext(
        kubeconfig=config.kubeconfig,
        namespaces=config.namespaces,
        metrics=metrics,
        options=dict(config.options),
    )
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if config.kubeconfig is not None or os.environ.get("KUBECONFIG"):
            return kopf.login_with_kubeconfig(**kwargs)
        return in_cluster(kopf.login_with_service_account(**kwargs), os.environ)

    @kopf.on.probe(id="alive", registry=registry)
    def alive(**_: Any) -> bool:
        return True

    for module in modules:
        module.register(registry, context)
    return registry, context


def in_cluster(
    info: kopf.ConnectionInfo | None, env: Mapping[str, str]
) -> kopf.ConnectionInfo | None:
    """kopf's ServiceAccount login names ``https://kubernetes.default.svc``, which needs cluster
    DNS; like client-go's in-cluster config, use the Service address the kubelet puts in every
    container's environment instead (the apiserver's certificate carries that IP)."""
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if info is None or not host or not port:
        return info
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return dataclasses.replace(info, server=f"https://{host}:{port}")


def settings() -> kopf.OperatorSettings:
    result = kopf.OperatorSettings()
    result.posting.enabled = False
    result.scanning.disabled = True
    result.watching.server_timeout = 300
    result.watching.client_timeout = 330
    result.networking.request_timeout = 30
    return result


async def run(
    config: RunConfig,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    """Run the selected operators until ``stop_flag`` is set or the process is signalled."""
    if config.kubeconfig is not None:
        # kopf's kubeconfig login reads the environment; this process runs one operator set.
        os.environ["KUBECONFIG"] = str(config.kubeconfig)
    metrics = OperatorMetrics.create(CollectorRegistry())
    registry, _ = build(config, metrics)
    if config.metrics:
        metrics_host, metrics_port = _host_port(config.metrics)
        serve(metrics.registry, metrics_port, metrics_host)
    log.info("operator_starting", operators=list(config.operators), namespaces=config.namespaces)
    started = asyncio.Event()  # kopf raises it once the startup handlers have run
    probes = None
    if config.liveness:
        host, port = _host_port(config.liveness)
        probes = await health.start(host, port, started)
    relay = asyncio.create_task(_relay(started, ready_flag))
    try:
        await kopf.operator(
            registry=registry,
            settings=settings(),
            standalone=True,
            clusterwide=not config.namespaces,
            namespaces=list(config.namespaces),
            stop_flag=stop_flag,
            ready_flag=started,
        )
    finally:
        relay.cancel()
        if probes is not None:
            await probes.cleanup()


async def _relay(
    started: asyncio.Event, ready_flag: asyncio.Event | threading.Event | None
) -> None:
    """Pass kopf's readiness on to the caller's flag (an asyncio or a threading event)."""
    await started.wait()
    if ready_flag is not None:
        ready_flag.set()


def parse_options(pairs: Sequence[str]) -> dict[str, str]:
    """``key=value`` pairs from the command line."""
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise FjordError(f"option {pair!r} is not KEY=VALUE")
        options[key.strip()] = value
    return options
