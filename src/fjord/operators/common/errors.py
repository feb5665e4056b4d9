"""Error classes every reconcile maps its failures into.

* :class:`TransientError`: retry with backoff (or after the server's ``retry_after``); the object
  is Degraded, nothing is deleted because of it.
* :class:`PermanentError`: retrying the same input cannot help; the object is Stalled with the
  reason until its spec or the operator's configuration changes (checked at the periodic resync).

Messages end up in conditions, Events and logs, so :func:`scrub` removes anything that looks like
a credential (URLs with passwords, ``password=...``) before they are built.
"""

from __future__ import annotations

import re

from fjord.errors import FjordError

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s:]*:[^/@\s]*@", re.I)
_KEY_VALUE = re.compile(r"(?P<key>password|passwd|secret|token)(?P<sep>\s*[=:]\s*)\S+", re.I)
_PG_PASSWORD = re.compile(r"(PASSWORD\s+)'(?:[^']|'')*'", re.I)


def scrub(text: str) -> str:
    """``text`` with passwords in URLs, ``key=value`` pairs and SQL literals replaced."""
    text = _URL_PASSWORD.sub(r"\g<scheme>***@", text)
    text = _PG_PASSWORD.sub(r"\1'***'", text)
    return _KEY_VALUE.sub(r"\g<key>\g<sep>***", text)


class ReconcileError(FjordError):
    """A classified failure; ``reason`` is a CamelCase word for conditions and Events."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(scrub(message))
        self.reason = reason


class TransientError(ReconcileError):
    """Worth retrying: a server down, slow or overloaded, a conflict, a 5xx or 429."""

    def __init__(self, message: str, *, reason: str, retry_after: float | None = None) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class PermanentError(ReconcileError):
    """Not worth retrying with the same input: invalid spec, missing privileges, bad config."""
