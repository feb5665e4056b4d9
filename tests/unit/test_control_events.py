"""Flux events: per-cluster HMAC, idempotent replays, Flux's errors, timeouts and restarts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select
from test_control_support import (
    ADMIN,
    CLUSTER,
    event_body,
    opened,
    report,
    settings,
    settle,
    with_app,
)

from fjord.control import ControlPlane, UnauthenticatedError, clusters, deploys, events, queries
from fjord.control.models import AuditEntry, ClusterApp, FluxEvent, utcnow
from fjord.control.progress import expire
from fjord.control.views import CellView


async def tt02_cell(plane: ControlPlane) -> CellView:
    """What the control plane shows for ttd/skjema in the tt02 cluster."""
    status = await queries.app_status(plane, ADMIN, "ttd/skjema")
    return next(e for e in status.environments if e.environment == "tt02").clusters[0]


async def count_events(plane: object) -> int:
    async with plane.db.session() as session:  # type: ignore[attr-defined]
        return int(await session.scalar(select(func.count()).select_from(FluxEvent)) or 0)


async def test_missing_wrong_or_foreign_signatures_are_refused_and_nothing_is_recorded(
    tmp_path: Path,
) -> None:
    async with opened(settings(tmp_path)) as plane:
        tokens = await with_app(plane, tmp_path)
        body = event_body(revision="tt02@sha256:" + "a" * 64)
        other_cluster_token = tokens["ttd.production.production-1"]
        for signature in (
            None,
            "",
            "sha256=" + "0" * 64,
            events.sign(other_cluster_token, body),  # another cluster's token
            events.sign(tokens[CLUSTER], body + b" "),  # signed, then changed
            "md5=" + "0" * 32,
        ):
            with pytest.raises(UnauthenticatedError):
                await events.ingest(plane, CLUSTER, body, signature)
        with pytest.raises(UnauthenticatedError):
            await events.ingest(plane, "ttd.tt02.nope", body, events.sign(tokens[CLUSTER], body))
        assert await count_events(plane) == 0
        async with plane.db.session() as session:
            assert await session.scalar(select(func.count()).select_from(ClusterApp)) == 0


async def test_replayed_events_are_recorded_once_and_change_nothing(tmp_path: Path) -> None:
    async with opened(settings(tmp_path)) as plane:
        tokens = await with_app(plane, tmp_path)
        deployment = await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
        ok = event_body(revision=f"tt02@{deployment.digest}")
        assert (await report(plane, tokens[CLUSTER], ok)).recorded
        before = await queries.get_deployment(plane, ADMIN, deployment.id)
        for _ in range(3):
            assert not (await report(plane, tokens[CLUSTER], ok)).recorded
        after = await queries.get_deployment(plane, ADMIN, deployment.id)
        assert after == before
        assert after.state == "ready"
        assert await count_events(plane) == 1


async def test_a_flux_error_for_the_release_fails_the_deployment_with_flux_s_message(
    tmp_path: Path,
) -> None:
    async with opened(settings(tmp_path)) as plane:
        tokens = await with_app(plane, tmp_path)
        deployment = await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
        # An error about some other revision (the previous one failing) does not count.
        stale = event_body(
            severity="error",
            reason="HealthCheckFailed",
            message="old release unhealthy",
            revision="tt02@sha256:" + "b" * 64,
        )
        await report(plane, tokens[CLUSTER], stale)
        assert (await queries.get_deployment(plane, ADMIN, deployment.id)).state == "progressing"
        message = (
            "health check failed after 30s: timeout waiting for: "
            "[Deployment/ttd-skjema/skjema status: 'InProgress']"
        )
        failing = event_body(
            severity="error",
            reason="HealthCheckFailed",
            message=message,
            revision=f"tt02@{deployment.digest}",
        )
        await report(plane, tokens[CLUSTER], failing)
        failed = await queries.get_deployment(plane, ADMIN, deployment.id)
        assert failed.state == "failed"
        assert failed.reason == f"{CLUSTER}: {message}"
        assert failed.clusters[0].state == "failed"
        flux_entries = [t for t in failed.timeline if t.cluster == CLUSTER]
        assert flux_entries[-1].message == message


async def test_a_source_error_without_revision_fails_the_deployment(tmp_path: Path) -> None:
    async with opened(settings(tmp_path)) as plane:
        tokens = await with_app(plane, tmp_path)
        deployment = await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
        message = "failed to verify the signature using provider 'cosign': no matching signatures"
        await report(
            plane,
            tokens[CLUSTER],
            event_body(
                kind="OCIRepository",
                namespace="flux-system",
                name="ttd-skjema",
                severity="error",
                reason="VerificationError",
                message=message,
            ),
        )
        failed = await queries.get_deployment(plane, ADMIN, deployment.id)
        assert failed.state == "failed"
        assert failed.reason == f"{CLUSTER}: {message}"


async def test_a_source_that_recovers_clears_its_failure_but_not_a_kustomization_s(
    tmp_path: Path,
) -> None:
    async with opened(settings(tmp_path)) as plane:
        tokens = await with_app(plane, tmp_path)
        deployment = await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
        revision = f"tt02@{deployment.digest}"
        await report(plane, tokens[CLUSTER], event_body(revision=revision))

        async def cell() -> tuple[bool | None, str | None]:
            status = await queries.app_status(plane, ADMIN, "ttd/skjema")
            found = status.environments[0].clusters[0]
            return found.ready, found.message

        def source(severity: str, reason: str, message: str, n: int) -> bytes:
            return event_body(
                kind="OCIRepository",
                namespace="flux-system",
                name="ttd-skjema",
                severity=severity,
                reason=reason,
                message=message,
                revision=revision,  # the stored artifact: what keeps running
                timestamp=f"2026-01-01T00:0{n}:00Z",
            )

        # The registry is unreachable: the source fails and keeps serving the applied revision.
        refused = (
            "failed to determine artifact digest: GET http://127.0.0.1:5000/v2/: "
            "dial tcp 127.0.0.1:5000: connect: connection refused"
        )
        await report(plane, tokens[CLUSTER], source("error", "OCIArtifactPullFailed", refused, 1))
        assert await cell() == (False, refused)
        # It is back: Flux reports the recovery once, for the same revision.
        stored = f"stored artifact with revision '{revision}'"
        await report(plane, tokens[CLUSTER], source("info", "Succeeded", stored, 2))
        assert await cell() == (True, stored)

        # A failing Kustomization is not cleared by its source's recovery.
        await report(plane, tokens[CLUSTER], source("error", "OCIArtifactPullFailed", refused, 3))
        unhealthy = "health check failed after 30s"
        await report(
            plane,
            tokens[CLUSTER],
            event_body(
                severity="error",
                reason="HealthCheckFailed",
                message=unhealthy,
                revision=revision,
                timestamp="2026-01-01T00:03:30Z",
            ),
        )
        await report(plane, tokens[CLUSTER], source("info", "Succeeded", stored, 4))
        assert await cell() == (False, unhealthy)


async def test_a_deployment_times_out_naming_the_silent_clusters(tmp_path: Path) -> None:
    async with opened(settings(tmp_path, deploy_timeout_seconds=60)) as plane:
        await with_app(plane, tmp_path)
        deployment = await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
        async with plane.db.session() as session:
            assert await expire(session, utcnow()) == 0
        async with plane.db.session() as session:
            assert await expire(session, utcnow() + dt.timedelta(seconds=61)) == 1
        failed = await queries.get_deployment(plane, ADMIN, deployment.id)
        assert failed.state == "failed"
        assert failed.reason is not None
        assert failed.reason.startswith("timed out after 6")
        assert f"{CLUSTER}: waiting for the cluster to report" in failed.reason


async def test_reading_an_overdue_deployment_fails_it_without_a_sweeper(tmp_path: Path) -> None:
    async with opened(settings(tmp_path, deploy_timeout_seconds=0)) as plane:
        await with_app(plane, tmp_path)
        deployment = await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
        read = await queries.get_deployment(plane, ADMIN, deployment.id)
        assert read.state == "failed"
        assert read.reason is not None
        assert read.reason.startswith("timed out after ")


async def test_a_revision_fjord_never_released_is_flagged_not_reported_ready(
    tmp_path: Path,
) -> None:
    # Someone pushed to the registry and moved the tag; Flux (whose key-based cosign check does
    # not bind the signature to the digest) applied it. fjord knows every digest it released.
    async with opened(settings(tmp_path)) as plane:
        tokens = await with_app(plane, tmp_path)
        deployment = await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
        await report(plane, tokens[CLUSTER], event_body(revision=f"tt02@{deployment.digest}"))
        foreign = "tt02@sha256:" + "f" * 64
        for message in ("applied", "Reconciliation finished in 1s", "again"):
            await report(plane, tokens[CLUSTER], event_body(revision=foreign, message=message))
        cell = await tt02_cell(plane)
        assert cell.ready is False
        assert cell.reason == events.UNKNOWN_REVISION
        assert cell.revision == foreign  # what runs there, truthfully
        assert cell.message is not None
        assert foreign in cell.message
        assert "never released" in cell.message
        async with plane.db.session() as session:
            audits = (
                await session.scalars(
                    select(AuditEntry).where(AuditEntry.action == "release.unknown_revision")
                )
            ).all()
        assert [(a.actor, a.target, a.detail["revision"]) for a in audits] == [
            ("flux", "ttd/skjema", foreign)  # once, however often the cluster repeats it
        ]

        # A fjord release applied again clears the verdict.
        await report(
            plane,
            tokens[CLUSTER],
            event_body(revision=f"tt02@{deployment.digest}", message="rolled back by hand"),
        )
        cell = await tt02_cell(plane)
        assert (cell.ready, cell.digest) == (True, deployment.digest)


async def test_a_late_delivery_of_an_older_event_does_not_overwrite_newer_state(
    tmp_path: Path,
) -> None:
    # notification-controller retries a failed post while newer events get through: the
    # cluster's timestamps, not the arrival order, decide what the cell shows.
    async with opened(settings(tmp_path)) as plane:
        tokens = await with_app(plane, tmp_path)
        deployment = await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
        revision = f"tt02@{deployment.digest}"
        healthy = event_body(revision=revision, timestamp="2026-01-01T00:00:10Z")
        stale_error = event_body(
            severity="error",
            reason="HealthCheckFailed",
            message="timeout waiting for: [Deployment/ttd-skjema/skjema status: 'InProgress']",
            revision=revision,
            timestamp="2026-01-01T00:00:05Z",
        )
        await report(plane, tokens[CLUSTER], healthy)
        assert (await report(plane, tokens[CLUSTER], stale_error)).recorded  # kept, as history
        cell = await tt02_cell(plane)
        assert (cell.ready, cell.digest) == (True, deployment.digest)
        assert (await queries.get_deployment(plane, ADMIN, deployment.id)).state == "ready"

        # A newer error does count.
        newer_error = event_body(
            severity="error",
            reason="HealthCheckFailed",
            message="pods crash-looping",
            revision=revision,
            timestamp="2026-01-01T00:00:20Z",
        )
        await report(plane, tokens[CLUSTER], newer_error)
        cell = await tt02_cell(plane)
        assert (cell.ready, cell.message) == (False, "pods crash-looping")


async def test_a_cluster_s_root_sync_shows_its_latest_report_whatever_the_arrival_order(
    tmp_path: Path,
) -> None:
    async with opened(settings(tmp_path)) as plane:
        tokens = await with_app(plane, tmp_path)

        def root(severity: str, reason: str, message: str, second: int) -> bytes:
            return event_body(
                namespace="flux-system",
                name="fjord-sync",
                severity=severity,
                reason=reason,
                message=message,
                revision="current@sha256:" + "c" * 64,
                timestamp=f"2026-01-01T00:00:{second:02d}Z",
            )

        async def sync_of_tt02() -> tuple[bool | None, str | None]:
            listed = await clusters.list_clusters(plane, ADMIN, "ttd")
            found = next(c for c in listed if c.id == CLUSTER)
            return found.sync_ready, found.sync_message

        assert await sync_of_tt02() == (None, None)
        await report(plane, tokens[CLUSTER], root("info", "ReconciliationSucceeded", "ok", 10))
        await report(plane, tokens[CLUSTER], root("error", "BuildFailed", "late, older", 5))
        assert await sync_of_tt02() == (True, "ok")
        await report(plane, tokens[CLUSTER], root("error", "BuildFailed", "kustomize build", 20))
        assert await sync_of_tt02() == (False, "kustomize build")


async def test_a_foreign_revision_is_flagged_even_after_an_error_named_it_first(
    tmp_path: Path,
) -> None:
    # The tampered content first fails its health check (Flux's error is shown as is), then
    # becomes healthy: that success must not pass for a fjord release.
    async with opened(settings(tmp_path)) as plane:
        tokens = await with_app(plane, tmp_path)
        await settle(plane, deploys.deploy(plane, ADMIN, "ttd/skjema", "tt02"))
        foreign = "tt02@sha256:" + "e" * 64
        unhealthy = event_body(
            severity="error", reason="HealthCheckFailed", message="unhealthy", revision=foreign
        )
        await report(plane, tokens[CLUSTER], unhealthy)
        assert (await tt02_cell(plane)).reason == "Kustomization/HealthCheckFailed"
        await report(plane, tokens[CLUSTER], event_body(revision=foreign, message="healthy now"))
        cell = await tt02_cell(plane)
        assert (cell.ready, cell.reason) == (False, events.UNKNOWN_REVISION)
