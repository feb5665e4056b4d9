"""The control plane's process-wide resources, built once and passed to every service call.

No global state: the API's app factory, the CLI and the tests each open their own
:class:`ControlPlane` from :class:`ControlSettings` and close it when done.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from fjord.artifact.signing import generate_key_pair, load_private_key, public_key_pem
from fjord.control import catalog, migrate
from fjord.control.db import Database
from fjord.control.secrets import Cipher, load_or_create_key
from fjord.control.settings import ControlSettings


def _signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The platform signing key, generated (mode 0600) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pair = generate_key_pair()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pair.private_pem)
            path.with_suffix(".pub").write_bytes(pair.public_pem)
    return load_private_key(path.read_bytes())


@dataclass
class ControlPlane:
    settings: ControlSettings
    db: Database
    signing_key: ec.EllipticCurvePrivateKey
    cipher: Cipher
    # This replica's identity: random per opened plane (one per process in production). Work
    # claims and locks name it, with a lease its heartbeat renews; never a pid or a host.
    replica: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    # Called when a request queued work: this replica's worker (if it runs one) looks at once
    # instead of at its next poll.
    work_queued: Callable[[], None] = lambda: None

    @property
    def public_key_pem(self) -> bytes:
        return public_key_pem(self.signing_key)

    @classmethod
    async def open(cls, settings: ControlSettings, *, migrate_db: bool = True) -> ControlPlane:
        """Migrate the database to the latest schema and load the platform's catalogue."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if migrate_db:
            migrate.upgrade(settings.database)
        db = Database(settings.database)
        plane = cls(
            settings=settings,
            db=db,
            signing_key=_signing_key(settings.signing_key_path),
            cipher=Cipher(load_or_create_key(settings.secret_key_path)),
        )
        async with db.session() as session:
            await catalog.sync_platform(session, settings.platform)
            await catalog.audit_pod_security(session, settings.platform)
        return plane

    async def close(self) -> None:
        await self.db.dispose()
