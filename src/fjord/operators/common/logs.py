"""structlog set-up: one JSON object per line on stderr, secrets never logged.

Values of keys that name a credential are replaced, and every string value goes through
:func:`~fjord.operators.common.errors.scrub`, so a password in a URL or an error text is masked
even when a handler logs it by mistake. Standard-library logging (kopf's) goes the same way.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from fjord.operators.common.errors import scrub

SECRET_KEYS = frozenset({"password", "secret", "token", "dsn", "url", "data", "string_data"})


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if key.lower() in SECRET_KEYS:
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = scrub(value)
    return event


def configure(level: str = "INFO") -> None:
    """Route structlog and stdlib logging to JSON lines on stderr at ``level``."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer(),
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kopf logs every handled event at INFO; keep it at WARNING unless asked for DEBUG.
    if level.upper() != "DEBUG":
        logging.getLogger("kopf").setLevel(logging.WARNING)
        logging.getLogger("aiohttp").setLevel(logging.WARNING)
