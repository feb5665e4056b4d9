"""Pod Security in the control plane: the app Namespace's PSA labels from the platform config,
and every change of an exception in the audit log."""

from __future__ import annotations

from pathlib import Path

import yaml
from test_control_support import ADMIN, opened, settings

from fjord.control import ControlSettings
from fjord.control.audit import entries
from fjord.control.catalog import POD_SECURITY_ACTION
from fjord.control.syncroot import sync_root_files
from fjord.spec.platform import PodSecurityException, Security


def with_exceptions(tmp_path: Path, *exceptions: PodSecurityException) -> ControlSettings:
    base = settings(tmp_path)
    security = Security(pod_security_exceptions=list(exceptions))
    return settings(tmp_path, platform=base.platform.model_copy(update={"security": security}))


def namespace_labels(config: ControlSettings, app: str) -> dict[str, str]:
    files = sync_root_files(config, "ttd", "tt02", [app])
    documents = list(yaml.safe_load_all(files[f"apps/{app}.yaml"]))
    namespace = next(d for d in documents if d["kind"] == "Namespace")
    labels: dict[str, str] = namespace["metadata"]["labels"]
    return labels


AGENT = PodSecurityException(org="ttd", app="agent", level="privileged", reason="reviewed: SEC-12")


def test_every_app_namespace_enforces_restricted_by_default(tmp_path: Path) -> None:
    labels = namespace_labels(settings(tmp_path), "skjema")
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "v1.36"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


def test_an_exception_relaxes_enforcement_of_that_app_only(tmp_path: Path) -> None:
    config = with_exceptions(tmp_path, AGENT)
    assert namespace_labels(config, "agent")["pod-security.kubernetes.io/enforce"] == "privileged"
    assert namespace_labels(config, "agent")["pod-security.kubernetes.io/warn"] == "restricted"
    assert namespace_labels(config, "skjema")["pod-security.kubernetes.io/enforce"] == "restricted"


async def pod_security_log(config: ControlSettings) -> list[tuple[str, str, dict[str, str]]]:
    async with opened(config) as plane:
        found = await entries(plane, ADMIN, action=POD_SECURITY_ACTION)
    return [(e.actor, e.target, e.detail) for e in reversed(found)]


async def test_exceptions_are_audited_when_added_changed_and_removed(tmp_path: Path) -> None:
    assert await pod_security_log(settings(tmp_path)) == []
    added = [("platform-config", "ttd/agent", {"level": "privileged", "reason": AGENT.reason})]
    assert await pod_security_log(with_exceptions(tmp_path, AGENT)) == added
    assert await pod_security_log(with_exceptions(tmp_path, AGENT)) == added  # unchanged
    baseline = AGENT.model_copy(update={"level": "baseline", "reason": "reviewed again: SEC-13"})
    changed = [
        *added,
        ("platform-config", "ttd/agent", {"level": "baseline", "reason": baseline.reason}),
    ]
    assert await pod_security_log(with_exceptions(tmp_path, baseline)) == changed
    restored = (
        "platform-config",
        "ttd/agent",
        {"level": "restricted", "reason": "the platform default"},
    )
    assert await pod_security_log(settings(tmp_path)) == [*changed, restored]
