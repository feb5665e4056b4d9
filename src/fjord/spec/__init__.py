"""The app spec (``fjord.yaml``), platform config and infra resource models.

Public API: :func:`load_app_spec`, :func:`parse_app_spec`, :func:`load_platform`,
:func:`default_platform`, :func:`spec_for_environment`, :class:`AppSpec`,
:class:`PlatformConfig`, :class:`DynamicConfig`, :class:`SpecError`.
"""

from fjord.spec.app import AppSpec
from fjord.spec.dynamic import NO_DYNAMIC_CONFIG, DynamicConfig
from fjord.spec.errors import Problem, SpecError
from fjord.spec.loader import load_app_spec, load_platform, parse_app_spec, parse_platform
from fjord.spec.overlay import Overlay, spec_for_environment
from fjord.spec.platform import PlatformConfig, default_platform

__all__ = [
    "NO_DYNAMIC_CONFIG",
    "AppSpec",
    "DynamicConfig",
    "Overlay",
    "PlatformConfig",
    "Problem",
    "SpecError",
    "default_platform",
    "load_app_spec",
    "load_platform",
    "parse_app_spec",
    "parse_platform",
    "spec_for_environment",
]
