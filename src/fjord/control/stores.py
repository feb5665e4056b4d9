"""An org's artifact store, as fjord pushes to it and as Flux in the org's clusters pulls it."""

from __future__ import annotations

from dataclasses import dataclass

from fjord.control.errors import InvalidError, NotFoundError
from fjord.control.settings import ControlSettings
from fjord.spec.platform import LocalStore as LocalStoreConfig
from fjord.spec.platform import OciStore
from fjord.stores import LocalStore, RegistryStore, Store


def _org(settings: ControlSettings, org: str) -> LocalStoreConfig | OciStore:
    config = settings.platform.orgs.get(org)
    if config is None:
        raise NotFoundError(f"unknown org {org!r}")
    if not isinstance(config.store, LocalStoreConfig | OciStore):
        raise InvalidError(
            f"org {org!r}: the control plane publishes to local and OCI stores only",
            hint="use an OCI registry for orgs whose clusters fjord deploys to",
        )
    return config.store


def open_store(settings: ControlSettings, org: str) -> Store:
    """A new store client for ``org``; the caller closes it (``async with``)."""
    config = _org(settings, org)
    if isinstance(config, LocalStoreConfig):
        return LocalStore(config.path or settings.local_store_dir)
    scheme = "http" if config.plain_http else "https"
    creds = settings.registry_credentials.get(config.registry)
    return RegistryStore(
        f"{scheme}://{config.registry}",
        username=creds.username if creds else None,
        password=creds.password if creds else None,
    )


def repository_prefix(settings: ControlSettings, org: str) -> str:
    """The OCI store's ``repository_prefix`` (``""`` for none and for local stores)."""
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


def flux_source(settings: ControlSettings, org: str, repository: str) -> FluxSource:
    config = _org(settings, org)
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
