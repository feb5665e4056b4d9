"""Apps' sources: a bare mirror per Git repository, refs resolved to commits, trees read out.

The control plane builds releases only from what this package hands it (the files of one commit),
never from a path on its host.
"""

from fjord.sources.errors import (
    CredentialError,
    SourceError,
    UnknownRefError,
    UnreachableError,
    UnsupportedSourceError,
)
from fjord.sources.mirror import Mirror, Resolved, mirror_for

__all__ = [
    "CredentialError",
    "Mirror",
    "Resolved",
    "SourceError",
    "UnknownRefError",
    "UnreachableError",
    "UnsupportedSourceError",
    "mirror_for",
]
