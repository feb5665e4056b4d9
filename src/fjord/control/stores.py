"""An org's artifact store, as fjord pushes to it and as Flux in the org's clusters pulls it.

OCI registries (and the local store) are pulled by ``OCIRepository`` sources; an Azure Blob
container by ``Bucket`` sources reading the trees the store writes beside its OCI layout
(``fjord.stores.azure``). Each org has its own container; fjord writes with the account key
(``ControlSettings.azure_keys``) and clusters read with a SAS for that container only.
"""

from __future__ import annotations

import datetime as dt
import logging
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fjord.control.errors import InvalidError, NotFoundError
from fjord.control.settings import ControlSettings
from fjord.spec.platform import AzureStore as AzureStoreConfig
from fjord.spec.platform import LocalStore as LocalStoreConfig
from fjord.spec.platform import OciStore
from fjord.stores import LocalStore, RegistryStore, Store

if TYPE_CHECKING:
    from fjord.stores.azure import AzureBlobStore

log = logging.getLogger(__name__)

StoreConfig = LocalStoreConfig | OciStore | AzureStoreConfig


def _org(settings: ControlSettings, org: str) -> StoreConfig:
    config = settings.platform.orgs.get(org)
    if config is None:
        raise NotFoundError(f"unknown org {org!r}")
    return config.store


def is_bucket(settings: ControlSettings, org: str) -> bool:
    """Whether the org's clusters read through Flux Bucket sources (an Azure Blob store)."""
    return isinstance(_org(settings, org), AzureStoreConfig)


def account_name(account_url: str) -> str:
    """The storage account of an account URL: the first DNS label of the host, or the first
    path segment of a path-style URL (Azurite's ``http://127.0.0.1:10000/devstoreaccount1``)."""
    parsed = urllib.parse.urlsplit(account_url)
    segment = parsed.path.strip("/").split("/")[0]
    return segment or (parsed.hostname or "").split(".")[0]


def _account_key(settings: ControlSettings, org: str, config: AzureStoreConfig) -> str:
    key = settings.azure_keys.get(config.account_url.rstrip("/"))
    if key is None:
        raise InvalidError(
            f"org {org!r}: no key for the Azure Storage account {config.account_url}",
            hint="give the control plane FJORD_AZURE_KEYS=<account_url>=<account key>",
        )
    return key


def open_store(settings: ControlSettings, org: str) -> Store:
    """A new store client for ``org``; the caller closes it (``async with``)."""
    config = _org(settings, org)
    if isinstance(config, LocalStoreConfig):
        return LocalStore(config.path or settings.local_store_dir)
    if isinstance(config, AzureStoreConfig):
        return open_azure_store(settings, org)
    scheme = "http" if config.plain_http else "https"
    creds = settings.registry_credentials.get(config.registry)
    return RegistryStore(
        f"{scheme}://{config.registry}",
        username=creds.username if creds else None,
        password=creds.password if creds else None,
    )


def open_azure_store(settings: ControlSettings, org: str) -> AzureBlobStore:
    """The org's container, written with the control plane's account key."""
    from fjord.stores.azure import AzureBlobStore  # the Azure SDK is slow to import

    config = _org(settings, org)
    if not isinstance(config, AzureStoreConfig):
        raise InvalidError(f"org {org!r} does not keep its releases in Azure Blob Storage")
    return AzureBlobStore.from_account_key(
        config.account_url.rstrip("/"),
        config.container,
        account_name=account_name(config.account_url),
        account_key=_account_key(settings, org, config),
    )


async def tree_digest(
    settings: ControlSettings, org: str, repository: str, tag: str, revision: str
) -> str | None:
    """The digest behind a Bucket ``revision`` of the tree of ``repository:tag``, while the tree
    is still that revision; None otherwise, or when the store cannot be read (logged)."""
    from fjord.stores.base import StoreError

    try:
        async with open_azure_store(settings, org) as store:
            state = await store.tree_state(store_repository(settings, org, repository), tag)
    except StoreError:
        log.warning("reading the tree of %s:%s failed", repository, tag, exc_info=True)
        return None
    return state.digest if state is not None and state.revision == revision else None


def read_sas(settings: ControlSettings, org: str, *, now: dt.datetime | None = None) -> str:
    """A SAS that lists and reads the org's container and nothing else (for its clusters)."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    config = _org(settings, org)
    if not isinstance(config, AzureStoreConfig):
        raise InvalidError(f"org {org!r} does not keep its releases in Azure Blob Storage")
    start = now or dt.datetime.now(dt.UTC)
    return str(
        generate_container_sas(
            account_name(config.account_url),
            config.container,
            account_key=_account_key(settings, org, config),
            permission=ContainerSasPermissions(read=True, list=True),
            start=start - dt.timedelta(minutes=5),  # tolerate clock skew
            expiry=start + dt.timedelta(days=settings.azure_sas_days),
        )
    )


def repository_prefix(settings: ControlSettings, org: str) -> str:
    """The OCI store's ``repository_prefix`` (``""`` for none, local and Azure stores)."""
    config = _org(settings, org)
    return config.repository_prefix.strip("/") if isinstance(config, OciStore) else ""


def store_repository(settings: ControlSettings, org: str, repository: str) -> str:
    """Where ``repository`` (``{org}/apps/{app}``, ``{org}/sync/{env}``) lives in the store."""
    prefix = repository_prefix(settings, org)
    return f"{prefix}/{repository}" if prefix else repository


@dataclass(frozen=True)
class FluxSource:
    """How a cluster's OCIRepository reaches a repository in the org's store."""

    url: str  # oci://host/repo, never with a tag
    insecure: bool
    registry: str
    needs_credentials: bool


@dataclass(frozen=True)
class BucketSource:
    """How a cluster's Bucket reaches a repository's trees in the org's container."""

    endpoint: str  # the account URL
    container: str
    repository: str

    def prefix(self, tag: str) -> str:
        """The Bucket's ``prefix``: the tree of ``tag`` (``fjord.stores.azure``'s layout)."""
        return f"tree/{self.repository}/{tag}/"

    def path(self, tag: str) -> str:
        """The Kustomization's ``path`` in that Bucket's artifact (Flux keeps full keys)."""
        return f"./tree/{self.repository}/{tag}"


def flux_source(settings: ControlSettings, org: str, repository: str) -> FluxSource | BucketSource:
    config = _org(settings, org)
    if isinstance(config, AzureStoreConfig):
        return BucketSource(config.account_url.rstrip("/"), config.container, repository)
    if isinstance(config, LocalStoreConfig):
        # The local store is the single-machine default: its references read
        # ``localhost/<repo>`` and clusters reach it only if it is served as a registry there.
        return FluxSource(
            url=f"oci://localhost/{repository}",
            insecure=False,
            registry="localhost",
            needs_credentials=False,
        )
    return FluxSource(
        url=f"oci://{config.registry}/{store_repository(settings, org, repository)}",
        insecure=config.plain_http,
        registry=config.registry,
        needs_credentials=config.registry in settings.registry_credentials,
    )
