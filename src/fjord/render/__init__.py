"""Rendering: an app spec (and its chart) → checked manifests for every target environment.

Public API: :func:`render_app`, :func:`render_spec`, :class:`RenderedRelease`,
:func:`check_objects`, :class:`RenderError`, :class:`CheckError`.
"""

from fjord.render.checks import Item, check_objects
from fjord.render.errors import CheckError, CheckFailure, RenderError
from fjord.render.release import RenderedRelease, environment_file, render_app, render_spec
from fjord.spec.dynamic import NO_DYNAMIC_CONFIG, DynamicConfig

__all__ = [
    "NO_DYNAMIC_CONFIG",
    "CheckError",
    "CheckFailure",
    "DynamicConfig",
    "Item",
    "RenderError",
    "RenderedRelease",
    "check_objects",
    "environment_file",
    "render_app",
    "render_spec",
]
