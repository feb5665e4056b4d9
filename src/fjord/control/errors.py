"""Errors of the control plane's service layer; the API maps each class to one HTTP status."""

from __future__ import annotations

from typing import Any

from fjord.errors import FjordError


class ControlError(FjordError):
    """Base class: something the caller asked for cannot be done.

    ``details`` are machine-readable facts the caller needs to act (the API adds them to the
    error body beside ``error`` and ``hint``), e.g. the current config version after a 409.
    """

    def __init__(self, message: str, hint: str | None = None, **details: Any) -> None:
        super().__init__(message, hint)
        self.details = details


class NotFoundError(ControlError):
    """Unknown org, app, environment, cluster, release or deployment (HTTP 404)."""


class ForbiddenError(ControlError):
    """The caller's roles do not allow this (HTTP 403)."""


class ConflictError(ControlError):
    """The request clashes with the current state, e.g. an idempotency key reused (HTTP 409)."""


class StaleVersionError(ConflictError):
    """A write based on a version that is no longer the latest (HTTP 409, ``current_version``)."""

    def __init__(self, message: str, hint: str | None, current_version: int) -> None:
        super().__init__(message, hint, current_version=current_version)
        self.current_version = current_version


class PreconditionRequiredError(ControlError):
    """A write that must say which version it is based on did not (HTTP 428)."""


class InvalidError(ControlError):
    """The request itself is wrong: bad environment order, bad config values (HTTP 422)."""


class UnauthenticatedError(ControlError):
    """No or a wrong credential (HTTP 401)."""


class UnavailableError(ControlError):
    """A service the control plane depends on (e.g. the OpenID provider) does not answer."""
