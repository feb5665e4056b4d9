"""Errors of the control plane's service layer; the API maps each class to one HTTP status."""

from __future__ import annotations

from fjord.errors import FjordError


class ControlError(FjordError):
    """Base class: something the caller asked for cannot be done."""


class NotFoundError(ControlError):
    """Unknown org, app, environment, cluster, release or deployment (HTTP 404)."""


class ForbiddenError(ControlError):
    """The caller's roles do not allow this (HTTP 403)."""


class ConflictError(ControlError):
    """The request clashes with the current state, e.g. an idempotency key reused (HTTP 409)."""


class InvalidError(ControlError):
    """The request itself is wrong: bad environment order, bad config values (HTTP 422)."""


class UnauthenticatedError(ControlError):
    """No or a wrong credential (HTTP 401)."""
