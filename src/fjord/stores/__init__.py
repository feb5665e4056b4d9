"""Artifact stores: a local OCI-layout directory (the default), OCI registries and Azure Blob.

All three implement :class:`Store`; signing and verification work through any of them.
"""

from __future__ import annotations

from fjord.stores.azure import AzureBlobStore
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
from fjord.stores.retry import RetryPolicy
from fjord.stores.signatures import pull_verified, sign, verify

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
