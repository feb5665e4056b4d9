"""Encryption at rest for the per-cluster HMAC tokens.

fjord must recompute HMACs with the token, so it cannot keep only a hash; the token is stored
encrypted (Fernet: AES-128-CBC + HMAC-SHA256) with a key file in the data directory, mode 0600.
A copy of the database alone does not reveal any cluster's token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet


def load_or_create_key(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race; use its key
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


class Cipher:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        self._mac_key = hashlib.sha256(b"fjord-mac\0" + key).digest()

    def mac(self, text: str) -> str:
        """A keyed MAC (e.g. the web UI's CSRF token for a session)."""
        return hmac.new(self._mac_key, text.encode(), hashlib.sha256).hexdigest()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        return self._fernet.decrypt(ciphertext.encode()).decode()

    def decrypt_fresh(self, ciphertext: str, max_age: int) -> str:
        """Like :meth:`decrypt`, refusing what was encrypted more than ``max_age`` seconds ago."""
        return self._fernet.decrypt(ciphertext.encode(), ttl=max_age).decode()


def new_token() -> str:
    """A random token: 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)
