"""Flux event ingest never answers 5xx, whatever a cluster (or whoever holds its key) posts.

The HMAC is checked first, so unsigned fuzz only ever meets the signature check; these bodies
are signed with the cluster's real key, so each reaches the parser and the state update. Shapes:
arbitrary JSON, and events that look like Flux's with any member replaced by any JSON value.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx2
import pytest
from fuzz_support import PHASES, ControlApi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fjord.control.events import sign

FUZZ = settings(
    max_examples=40, phases=PHASES, deadline=None, suppress_health_check=list(HealthCheck)
)

text = st.text(max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
# Flux's shape, each member either plausible or any JSON value.
flux_events = st.fixed_dictionaries(
    {
        "involvedObject": st.fixed_dictionaries(
            {
                "kind": st.sampled_from(["Kustomization", "OCIRepository"]) | json_values,
                "namespace": st.sampled_from(["ttd-skjema", "flux-system"]) | json_values,
                "name": st.sampled_from(["skjema", "fjord-sync"]) | json_values,
            }
        )
        | json_values,
        "severity": st.sampled_from(["info", "error"]) | json_values,
        "timestamp": st.sampled_from(["2026-01-01T00:00:00Z", "not a time", ""]) | json_values,
        "reason": st.sampled_from(["ReconciliationSucceeded", "HealthCheckFailed"]) | json_values,
        "message": text | json_values,
        "metadata": st.dictionaries(
            st.sampled_from(["revision", "kustomize.toolkit.fluxcd.io/revision", "x"]),
            st.sampled_from(["tt02@sha256:" + "a" * 64]) | json_values,
        )
        | json_values,
        "reportingController": st.sampled_from(["kustomize-controller"]) | json_values,
    }
)


@pytest.fixture(scope="module")
def http(control_api: ControlApi) -> Any:
    with httpx2.Client(base_url=control_api.url, timeout=30) as client:
        yield client


def post_signed(http: Any, api: ControlApi, body: bytes) -> httpx2.Response:
    headers = {"X-Signature": sign(api.cluster_token, body), "Content-Type": "application/json"}
    response: httpx2.Response = http.post(
        f"/api/flux/events/{api.cluster}", content=body, headers=headers
    )
    return response


@FUZZ
@given(event=flux_events)
def test_flux_shaped_events_never_answer_5xx(
    event: dict[str, Any], http: Any, control_api: ControlApi, fuzz_cases: Counter[str]
) -> None:
    fuzz_cases["control POST /api/flux/events (signed, Flux-shaped)"] += 1
    response = post_signed(http, control_api, json.dumps(event).encode())
    assert response.status_code < 500, (event, response.text)


@FUZZ
@given(body=json_values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200))
def test_any_signed_body_never_answers_5xx(
    body: bytes, http: Any, control_api: ControlApi, fuzz_cases: Counter[str]
) -> None:
    fuzz_cases["control POST /api/flux/events (signed, any body)"] += 1
    response = post_signed(http, control_api, body)
    assert response.status_code < 500, (body, response.text)
