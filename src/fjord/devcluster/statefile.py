"""The small JSON file each local runner keeps next to its data: what runs, on which port.

Written atomically (temp file + rename), so a reader in another process (``fjord dev down``,
a test) never sees half a file, and owner-only, because most of them hold a password or token.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fjord.errors import FjordError

_HINT = "stop what it started by hand (see the logs next to it), then remove the file"


def write_state(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically and readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)


def read_state(path: Path) -> dict[str, Any] | None:
    """The state in ``path``; None when there is none (never started, or stopped)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        # A state file fjord cannot read is not "nothing running": say which file to look at.
        raise FjordError(f"{path}: unreadable state file ({exc})", _HINT) from exc
    if not isinstance(data, dict):
        raise FjordError(f"{path}: not a JSON object", _HINT)
    return data


def remove_state(path: Path) -> None:
    path.unlink(missing_ok=True)
