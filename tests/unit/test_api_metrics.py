"""``/metrics``: live counters and fleet gauges, through the real app over an ASGI transport."""

from __future__ import annotations

from pathlib import Path

import httpx2
from prometheus_client.parser import text_string_to_metric_families
from test_control_support import ADMIN, CLUSTER, event_body, settle, with_app

from fjord.control import ControlPlane, deploys, events


async def scrape(http: httpx2.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


async def test_metrics_count_events_requests_and_the_fleet(
    plane: ControlPlane, http: httpx2.AsyncClient, tmp_path: Path
) -> None:
    tokens = await with_app(plane, tmp_path)
    deployment = await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
    before = await scrape(http)
    progressing = (
        "fjord_deployments_active",
        labels(org="ttd", environment="tt02", state="progressing"),
    )
    assert before[progressing] == 1
    assert before[("fjord_clusters", labels(org="ttd", environment="tt02", health="pending"))] == 1

    url = f"/api/flux/events/{CLUSTER}"
    body = event_body(revision=f"tt02@{deployment.digest}")
    signed = {"X-Signature": events.sign(tokens[CLUSTER], body)}
    assert (await http.post(url, content=body, headers=signed)).status_code == 202
    assert (await http.post(url, content=body, headers=signed)).status_code == 202  # replay
    refused = await http.post(url, content=body, headers={"X-Signature": "sha256=00"})
    assert refused.status_code == 401
    assert (await http.get("/no/such/page")).status_code == 404

    after = await scrape(http)
    assert after[("fjord_flux_events_total", labels(outcome="recorded"))] == 1
    assert after[("fjord_flux_events_total", labels(outcome="replayed"))] == 1
    assert after[("fjord_flux_events_total", labels(outcome="refused"))] == 1
    route = "/api/flux/events/{cluster_id}"
    assert (
        after[("fjord_api_request_seconds_count", labels(method="POST", route=route, status="202"))]
        == 2
    )
    assert (
        after[("fjord_api_request_seconds_count", labels(method="POST", route=route, status="401"))]
        == 1
    )
    assert (
        after[
            (
                "fjord_api_request_seconds_count",
                labels(method="GET", route="unmatched", status="404"),
            )
        ]
        == 1
    )
    # The deployment finished; the cell is ready; no app or cluster names in any label.
    assert progressing not in after
    assert after[("fjord_app_clusters", labels(org="ttd", environment="tt02", health="ready"))] == 1
    assert not any("skjema" in value for _, sample_labels in after for _, value in sample_labels)
