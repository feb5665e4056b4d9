"""Where a token client gets its settings: fixed values, or a mounted Secret that can change.

Kubernetes updates a mounted Secret atomically: it writes a new ``..<timestamp>`` directory,
then swaps the ``..data`` symlink, and each key file is a symlink through ``..data``. So a file's
path never changes but the inode behind it does; the fingerprint below follows the symlinks and
also records the ``..data`` target, which catches the swap even when sizes and mtimes collide.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from fjord.maskinporten.errors import SettingsError
from fjord.maskinporten.secret_format import (
    SECRET_KEYS,
    MaskinportenSettings,
    read_secret_directory,
)

log = logging.getLogger(__name__)

Fingerprint = tuple[object, ...]


class SettingsSource(Protocol):
    def current(self) -> MaskinportenSettings:
        """The settings to use now; a new object whenever they changed."""
        ...


class StaticSettings:
    """Settings that never change (environment variables, or given in code)."""

    def __init__(self, settings: MaskinportenSettings) -> None:
        self._settings = settings

    def current(self) -> MaskinportenSettings:
        return self._settings


class SecretDirectory:
    """A mounted Secret directory, re-read when its files change.

    ``check_interval`` bounds how often the directory is stat'ed (0: on every call). A broken
    update (unparseable content) keeps the previous settings and is retried on the next check,
    so a half-written file written by a non-atomic writer never takes an app down.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        check_interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self._interval = check_interval
        self._monotonic = monotonic
        self._checked_at: float | None = None
        self._fingerprint: Fingerprint | None = None
        self._data: dict[str, str] | None = None
        self._settings: MaskinportenSettings | None = None
        self.reloads = 0  # how many times new settings were loaded (for tests and metrics)

    def current(self) -> MaskinportenSettings:
        now = self._monotonic()
        due = self._checked_at is None or now - self._checked_at >= self._interval
        if due or self._settings is None:
            self._checked_at = now
            self._refresh()
        if self._settings is None:  # _refresh raises rather than leave this unset
            raise SettingsError(f"no Maskinporten settings in {self.path}")
        return self._settings

    def _refresh(self) -> None:
        fingerprint = self.fingerprint()
        if fingerprint == self._fingerprint and self._settings is not None:
            return
        try:
            data = read_secret_directory(self.path)
            settings = MaskinportenSettings.from_secret_data(data) if data != self._data else None
        except (SettingsError, OSError) as exc:
            if self._settings is None:
                raise SettingsError(
                    f"cannot read Maskinporten settings in {self.path}: {exc}"
                ) from exc
            log.warning("keeping previous Maskinporten settings: %s", exc)
            return
        self._fingerprint = fingerprint
        if settings is not None:  # content changed, not only metadata
            self._data = data
            self._settings = settings
            self.reloads += 1

    def fingerprint(self) -> Fingerprint:
        parts: list[object] = []
        data_link = self.path / "..data"
        if data_link.is_symlink():
            parts.append(os.readlink(data_link))
        for key in SECRET_KEYS:
            try:
                st = (self.path / key).stat()  # follows the symlinks, as reads do
            except FileNotFoundError:
                parts.append((key, None))
                continue
            parts.append((key, st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(parts)
