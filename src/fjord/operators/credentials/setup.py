"""The credentials operator's parts, built at startup into the shared runtime.

One Kubernetes session, the admin settings source, one handler per backing service (each with
its own connection pool), and two work queues: AppCredentials reconciles and the finalizer of
managed Secrets.
"""

from __future__ import annotations

from fjord.operators.common.runtime import Runtime
from fjord.operators.credentials import naming
from fjord.operators.credentials.admin import AdminSource
from fjord.operators.credentials.finalizer import SecretFinalizer
from fjord.operators.credentials.reconcile import CredentialsReconciler
from fjord.operators.credentials.services.base import ServiceHandler
from fjord.operators.credentials.services.postgresql import PostgreSQLHandler
from fjord.operators.credentials.services.redis import RedisHandler

NAME = "credentials"
FINALIZER_QUEUE = f"{NAME}-finalizer"
SELECTOR = f"{naming.MANAGED_BY}={naming.MANAGER}"
"""The managed Secrets: the only Secrets the operators watch or list (server-side selector)."""


async def start(runtime: Runtime) -> None:
    context = runtime.context
    resync = float(context.option("credentials.resync", "3600") or 3600)
    workers = int(context.option("credentials.workers", "16") or 16)
    kube = await runtime.connect()
    admin = AdminSource(kube, context.option("credentials.admin-secret"))
    handlers: dict[str, ServiceHandler] = {
        "postgresql": PostgreSQLHandler(admin, pool_size=max(2, workers // 2)),
        "redis": RedisHandler(admin),
    }
    for handler in handlers.values():
        runtime.on_stop(handler.close)
    reconciler = CredentialsReconciler(kube, handlers, context.nudges, resync=resync)
    runtime.controller(NAME, reconciler, workers=workers, permanent_retry=resync)
    runtime.controller(
        FINALIZER_QUEUE, SecretFinalizer(kube, handlers), workers=max(2, workers // 4)
    )
