"""Stores named by a URL on the command line.

``oci://host[:port][/prefix]``: an OCI registry (plain HTTP for loopback hosts, HTTPS otherwise;
credentials from ``FJORD_REGISTRY_USERNAME``/``FJORD_REGISTRY_PASSWORD``).
``file:///path``: a local OCI-layout directory.
``azure://container``: Azure Blob Storage with the connection string from
``AZURE_STORAGE_CONNECTION_STRING``.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass

from fjord.errors import FjordError
from fjord.stores.base import Store
from fjord.stores.local import LocalStore
from fjord.stores.registry import RegistryStore

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class Location:
    """A store and the repository prefix under it."""

    store: Store
    prefix: str

    def repository(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name


def open_location(url: str) -> Location:
    parsed = urllib.parse.urlsplit(url)
    prefix = parsed.path.strip("/")
    if parsed.scheme == "oci":
        if not parsed.netloc:
            raise FjordError(f"store URL {url!r} names no registry host", hint="oci://host:port")
        host = parsed.hostname or ""
        scheme = "http" if host in LOOPBACK_HOSTS else "https"
        store: Store = RegistryStore(
            f"{scheme}://{parsed.netloc}",
            username=os.environ.get("FJORD_REGISTRY_USERNAME"),
            password=os.environ.get("FJORD_REGISTRY_PASSWORD"),
        )
        return Location(store, prefix)
    if parsed.scheme == "file":
        return Location(LocalStore(parsed.path or "."), "")
    if parsed.scheme == "azure":
        from fjord.stores.azure import AzureBlobStore  # the Azure SDK is slow to import

        connection = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        if not connection:
            raise FjordError(
                f"store URL {url!r} needs a connection string",
                hint="set AZURE_STORAGE_CONNECTION_STRING",
            )
        return Location(AzureBlobStore.from_connection_string(connection, parsed.netloc), prefix)
    raise FjordError(
        f"unknown store URL {url!r}",
        hint="use oci://host:port[/prefix], file:///path or azure://container",
    )
