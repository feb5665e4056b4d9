"""What the control plane says about an app's infra resources per cluster, from the release it
rendered and Flux's last report (no cluster credentials involved)."""

from __future__ import annotations

from pathlib import Path

from fjord.control.infra import FAILED, PENDING, READY, UNKNOWN, InfraRef, declared, verdict
from fjord.control.models import ClusterApp
from fjord.render.release import render_app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "platform-app"
MASKINPORTEN = InfraRef("MaskinportenClient", "ttd-skjema", "skjema")
DIGEST = "sha256:" + "a" * 64
OLD = "sha256:" + "b" * 64


def _cell(ready: bool | None, applied: str | None, message: str | None = None) -> ClusterApp:
    return ClusterApp(
        cluster_id="ttd.tt02.tt02-1", app_id=1, ready=ready, applied_digest=applied, message=message
    )


def test_declared_lists_the_infra_resources_of_a_rendered_environment() -> None:
    rendered = render_app(EXAMPLE)
    refs = declared(rendered.manifest("tt02").decode())
    assert [r.path for r in refs] == [
        "AppCredentials/ttd-skjema/skjema",
        "MaskinportenClient/ttd-skjema/skjema",
    ]


def test_declared_ignores_other_kinds_and_other_groups() -> None:
    manifest = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: n}\n---\n"
        "apiVersion: example.com/v1\nkind: MaskinportenClient\nmetadata: {name: b, namespace: n}\n"
    )
    assert declared(manifest) == []


def test_ready_only_once_flux_passed_health_checks_at_this_release() -> None:
    assert verdict(MASKINPORTEN, _cell(True, DIGEST), DIGEST).state == READY
    running_older = verdict(MASKINPORTEN, _cell(True, OLD), DIGEST)
    assert running_older.state == PENDING
    assert verdict(MASKINPORTEN, _cell(None, OLD), DIGEST).state == PENDING
    assert verdict(MASKINPORTEN, None, DIGEST).state == PENDING


def test_a_failure_naming_the_resource_fails_it_with_flux_message() -> None:
    message = (
        "health check failed after 30s: failed early due to stalled resources: "
        "[MaskinportenClient/ttd-skjema/skjema status: 'Failed']"
    )
    failed = verdict(MASKINPORTEN, _cell(False, OLD, message), DIGEST)
    assert (failed.state, failed.message) == (FAILED, message)


def test_a_failure_naming_another_object_leaves_the_resource_unknown() -> None:
    message = "Deployment/ttd-skjema/skjema: ImagePullBackOff"
    other = verdict(MASKINPORTEN, _cell(False, OLD, message), DIGEST)
    assert other.state == UNKNOWN
    assert other.message == f"the app failed here: {message}"
