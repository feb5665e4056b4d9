"""Artifact stores: a local OCI-layout directory (the default), OCI registries and Azure Blob.

All three implement :class:`Store`; signing and verification work through any of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fjord.retry import RetryPolicy
from fjord.stores.base import (
    BlobOutcome,
    NotFoundError,
    Store,
    StoreError,
    check_repository,
    check_tag,
)
from fjord.stores.local import LocalStore
from fjord.stores.registry import (
    RegistryAuthError,
    RegistryError,
    RegistryNotFoundError,
    RegistryStore,
)
from fjord.stores.signatures import pull_verified, sign, verify

if TYPE_CHECKING:
    from fjord.stores.azure import AzureBlobStore


def __getattr__(name: str) -> Any:
    # The Azure SDK takes ~0.3 s to import; load it only when the Azure store is used.
    if name == "AzureBlobStore":
        from fjord.stores.azure import AzureBlobStore

        return AzureBlobStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AzureBlobStore",
    "BlobOutcome",
    "LocalStore",
    "NotFoundError",
    "RegistryAuthError",
    "RegistryError",
    "RegistryNotFoundError",
    "RegistryStore",
    "RetryPolicy",
    "Store",
    "StoreError",
    "check_repository",
    "check_tag",
    "pull_verified",
    "sign",
    "verify",
]
