"""The operator's long-lived parts, built once at startup and shared by every reconcile.

One ``SelfServiceClient`` (so one cached supplier token for all objects, not one per call), one
``ClientListing``, one Kubernetes session, and the common work queue. Watch events only decide
*whether* to enqueue; the reconcile always reads the latest body seen.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.dynamic import DynamicClient

from fjord.kube import Kube
from fjord.maskinporten.admin import SelfServiceClient
from fjord.maskinporten.secret_format import MaskinportenSettings
from fjord.operators.common.controller import Controller
from fjord.operators.common.metrics import OperatorMetrics
from fjord.operators.common.result import Result
from fjord.operators.maskinporten.act import Actor, data_hash, rsa_key_factory
from fjord.operators.maskinporten.config import ConfigError, OperatorConfig
from fjord.operators.maskinporten.digdir_metrics import counting_client, digdir_counter
from fjord.operators.maskinporten.model import HASH_ANNOTATION, OWNER_LABEL, ROTATE_ANNOTATION
from fjord.operators.maskinporten.observe import ClientListing, decode_secret_data
from fjord.operators.maskinporten.reconcile import Memory, Reconciler
from fjord.retry import RetryPolicy

NAME = "maskinporten"
Key = tuple[str, str]


async def connect(kubeconfig: Path | None) -> Kube:
    """A session from the kubeconfig (flag or $KUBECONFIG), else the pod's service account."""
    path = kubeconfig or (Path(os.environ["KUBECONFIG"]) if os.environ.get("KUBECONFIG") else None)
    if path is not None:
        return await Kube.connect(path)
    configuration = Configuration()
    k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    api = ApiClient(configuration)
    return Kube(api, await DynamicClient(api))


async def load_supplier(config: OperatorConfig, kube: Kube) -> MaskinportenSettings:
    if config.supplier_dir is not None:
        return config.supplier_from_directory()
    assert config.supplier_secret is not None  # checked() guarantees one of the two
    namespace, name = config.supplier_secret
    secret = await kube.get("v1", "Secret", name, namespace)
    if secret is None:
        raise ConfigError(f"the supplier Secret {namespace}/{name} does not exist")
    return MaskinportenSettings.from_secret_data(decode_secret_data(secret))


def _relevant(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a change of deserves an immediate reconcile (status updates do not)."""
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return (
        meta.get("generation"),
        annotations.get(ROTATE_ANNOTATION),
        bool(meta.get("deletionTimestamp")),
    )


@dataclass
class Runtime:
    config: OperatorConfig
    metrics: OperatorMetrics
    kubeconfig: Path | None = None
    bodies: dict[Key, dict[str, Any]] = field(default_factory=dict)
    memories: dict[Key, Memory] = field(default_factory=dict)
    _kube: Kube | None = None
    _api: SelfServiceClient | None = None
    _http: httpx2.AsyncClient | None = None
    _controller: Controller | None = None
    reconciler: Reconciler | None = None

    async def start(self) -> None:
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            # httpx2 logs every Digdir request at INFO: thousands of lines at 500 clients.
            logging.getLogger("httpx2").setLevel(logging.WARNING)
        kube = self._kube = await connect(self.kubeconfig)
        supplier = await load_supplier(self.config, kube)
        self._http = counting_client(digdir_counter(self.metrics.registry))
        api = self._api = SelfServiceClient(
            api_base_url=self.config.api_base_url,
            supplier=supplier,
            http=self._http,
            retry=RetryPolicy(attempts=self.config.request_attempts),
        )
        listing = ClientListing(api)
        self.reconciler = Reconciler(
            api=api,
            kube=kube,
            listing=listing,
            actor=Actor(
                api=api,
                kube=kube,
                authority=supplier.issuer,
                new_key=rsa_key_factory(self.config.key_size),
            ),
            policy=self.config.policy,
            platform_id=self.config.platform_id,
            client_orgno=self.config.client_orgno,
            authority=supplier.issuer,
        )
        self._controller = Controller(
            NAME,
            self._reconcile,
            self.metrics,
            workers=self.config.concurrency,
            permanent_retry=self.config.policy.stalled_retry,
        )
        self._controller.start()

    async def stop(self) -> None:
        if self._controller is not None:
            await self._controller.stop()
        if self._api is not None:
            await self._api.aclose()
        if self._http is not None:
            await self._http.aclose()
        if self._kube is not None:
            await self._kube.close()

    @property
    def controller(self) -> Controller:
        if self._controller is None:
            raise RuntimeError("the Maskinporten operator is not started")
        return self._controller

    async def _reconcile(self, key: Hashable, _: dict[str, Any], attempts: int) -> Result:
        assert self.reconciler is not None
        k: Key = key  # type: ignore[assignment]  # the queue is keyed by (namespace, name)
        body = self.bodies[k]
        memory = self.memories.setdefault(k, Memory())
        return await self.reconciler.reconcile(body, memory, attempts)

    # -- watch events ------------------------------------------------------------------------

    def on_resource(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key: Key = (str(meta.get("namespace")), str(meta.get("name")))
        if event_type == "DELETED":
            self.controller.forget(key)
            self.bodies.pop(key, None)
            self.memories.pop(key, None)
            return
        previous = self.bodies.get(key)
        self.bodies[key] = dict(body)
        if previous is None or _relevant(previous) != _relevant(body):
            self.controller.enqueue(key, self.bodies[key])

    def on_secret(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Someone deleted or changed a Secret we wrote: repair it now, not at the next resync."""
        meta = body.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(OWNER_LABEL)
        key: Key = (str(meta.get("namespace")), str(owner))
        if owner is None or key not in self.bodies:
            return
        recorded = (meta.get("annotations") or {}).get(HASH_ANNOTATION)
        if event_type == "DELETED" or recorded != data_hash(dict(body)):
            self.controller.enqueue(key)
