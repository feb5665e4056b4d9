"""A faithful local emulator of Maskinporten and Digdir's self-service API.

Digdir offers no test server, so fjord's operator and apps are tested against this one: the
token endpoint enforces the JWT-bearer grant rules, the self-service API enforces the client and
JWKS rules, and ``/test/`` endpoints inject faults, move the clock and dump the state.
"""

from fjord.maskinporten.emulator.app import create_app, metadata
from fjord.maskinporten.emulator.clock import EmulatorClock
from fjord.maskinporten.emulator.config import (
    ADMIN_SCOPES,
    EmulatorConfig,
    FaultConfig,
    ScopeDefinition,
    SupplierClient,
)
from fjord.maskinporten.emulator.server import EmulatorServer
from fjord.maskinporten.emulator.state import EmulatorState

__all__ = [
    "ADMIN_SCOPES",
    "EmulatorClock",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorState",
    "FaultConfig",
    "ScopeDefinition",
    "SupplierClient",
    "create_app",
    "metadata",
]
