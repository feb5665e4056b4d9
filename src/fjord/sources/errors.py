"""What can go wrong fetching an app's source; every message names the repository and the ref."""

from __future__ import annotations

from fjord.errors import FjordError


class SourceError(FjordError):
    """The source cannot be fetched or used; nothing is built from it."""


class UnknownRefError(SourceError):
    """The repository has no tag, branch or commit by that name."""


class UnreachableError(SourceError):
    """The repository's server did not answer (after retries), or has no such repository."""


class CredentialError(SourceError):
    """The server refused the credential (missing, wrong, or without read access)."""


class UnsupportedSourceError(SourceError):
    """The tree at that commit uses something fjord does not build from (submodules, LFS)."""
