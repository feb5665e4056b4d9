"""The Maskinporten operator's parts, built once at startup into the shared runtime.

One ``SelfServiceClient`` (so one cached supplier token for all objects, not one per call), one
``ClientListing``, the Kubernetes session of the runtime, and one work queue. What each object's
reconciles remember between passes (:class:`Memory`) lives here, keyed like the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fjord.maskinporten.admin import SelfServiceClient
from fjord.maskinporten.secret_format import MaskinportenSettings
from fjord.operators.common.kubeapi import CountingKube
from fjord.operators.common.result import Result
from fjord.operators.common.runtime import Key, Runtime
from fjord.operators.maskinporten.act import Actor, data_hash, rsa_key_factory
from fjord.operators.maskinporten.config import ConfigError, OperatorConfig
from fjord.operators.maskinporten.digdir_metrics import counting_client, digdir_counter
from fjord.operators.maskinporten.model import HASH_ANNOTATION, OWNER_LABEL
from fjord.operators.maskinporten.observe import ClientListing, decode_secret_data
from fjord.operators.maskinporten.reconcile import Memory, Reconciler
from fjord.retry import RetryPolicy

NAME = "maskinporten"


async def load_supplier(config: OperatorConfig, kube: CountingKube) -> MaskinportenSettings:
    if config.supplier_dir is not None:
        return config.supplier_from_directory()
    assert config.supplier_secret is not None  # checked() guarantees one of the two
    namespace, name = config.supplier_secret
    secret = await kube.get("v1", "Secret", name, namespace)
    if secret is None:
        raise ConfigError(f"the supplier Secret {namespace}/{name} does not exist")
    return MaskinportenSettings.from_secret_data(decode_secret_data(secret))


def drifted_secret_owner(event_type: str | None, body: Mapping[str, Any]) -> Key | None:
    """The owning client's key when someone deleted or changed a Secret we wrote, else None.

    Repairing it then is faster than waiting for the next resync.
    """
    meta = body.get("metadata") or {}
    owner = (meta.get("labels") or {}).get(OWNER_LABEL)
    if owner is None:
        return None
    recorded = (meta.get("annotations") or {}).get(HASH_ANNOTATION)
    if event_type == "DELETED" or recorded != data_hash(dict(body)):
        return str(meta.get("namespace")), str(owner)
    return None


@dataclass
class Reconciles:
    """The work queue's reconcile: the shared reconciler plus each object's :class:`Memory`."""

    reconciler: Reconciler
    memories: dict[Key, Memory] = field(default_factory=dict)

    async def __call__(self, key: Hashable, body: dict[str, Any], attempts: int) -> Result:
        k: Key = key  # type: ignore[assignment]  # the queue is keyed by (namespace, name)
        return await self.reconciler.reconcile(
            body, self.memories.setdefault(k, Memory()), attempts
        )

    def forget(self, key: Key) -> None:
        self.memories.pop(key, None)


async def start(runtime: Runtime, config: OperatorConfig) -> Reconciles:
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # httpx2 logs every Digdir request at INFO: thousands of lines at 500 clients.
        logging.getLogger("httpx2").setLevel(logging.WARNING)
    kube = await runtime.connect()
    supplier = await load_supplier(config, kube)
    http = counting_client(digdir_counter(runtime.context.metrics.registry))
    runtime.on_stop(http.aclose)
    api = SelfServiceClient(
        api_base_url=config.api_base_url,
        supplier=supplier,
        http=http,
        retry=RetryPolicy(attempts=config.request_attempts),
    )
    runtime.on_stop(api.aclose)
    reconciles = Reconciles(
        Reconciler(
            api=api,
            kube=kube,
            listing=ClientListing(api),
            actor=Actor(
                api=api,
                kube=kube,
                authority=supplier.issuer,
                new_key=rsa_key_factory(config.key_size),
            ),
            policy=config.policy,
            platform_id=config.platform_id,
            client_orgno=config.client_orgno,
            authority=supplier.issuer,
        )
    )
    runtime.controller(
        NAME,
        reconciles,
        workers=config.concurrency,
        permanent_retry=config.policy.stalled_retry,
        on_forget=reconciles.forget,
    )
    return reconciles
