"""Every route of the control plane's OpenAPI, fuzzed by schemathesis: never a 5xx.

Schemathesis generates requests from ``/openapi.json`` (valid and schema-violating ones) and
sends them to the real server with a platform-admin token, so requests reach the handlers rather
than stopping at authentication. Whatever the API's own validation and limits are, the
harness covers them: it only reads the schema the server publishes.
"""

from __future__ import annotations

from collections import Counter

import schemathesis
from fuzz_support import MAX_EXAMPLES_PER_ROUTE, PHASES, ControlApi, describe
from hypothesis import HealthCheck, settings

from fjord.api import ApiSettings, create_app

# The document the server publishes at /openapi.json, taken from the same app factory at
# import time (pytest collects one test per operation before any server runs).
schema = schemathesis.openapi.from_dict(create_app(ApiSettings()).openapi())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES_PER_ROUTE,
    phases=PHASES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_route_answers_5xx(
    case: schemathesis.Case, control_api: ControlApi, fuzz_cases: Counter[str]
) -> None:
    fuzz_cases[f"control {case.operation.label}"] += 1
    response = case.call(
        base_url=control_api.url, headers={"Authorization": f"Bearer {control_api.token}"}
    )
    assert response.status_code < 500, describe(case, response)
