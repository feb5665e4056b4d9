"""Apps with their own Helm chart, rendered in-process by helm-python-sdk (real Helm)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from fjord.render import CheckError, DynamicConfig, RenderError, render_app
from fjord.spec import SpecError

TESTS = Path(__file__).resolve().parents[1]
CHART_APP = TESTS / "data" / "apps" / "chart-app"
EXAMPLES = TESTS.parent / "examples"
GOLDEN = TESTS / "golden" / "chart-app"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A private copy of the chart app, free to modify."""
    target = tmp_path / "repo" / "chart-app"
    shutil.copytree(CHART_APP, target)
    return target


def kinds(content: bytes) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(content)}


def test_chart_with_helpers_and_file_dependency_matches_golden() -> None:
    release = render_app(CHART_APP)
    if os.environ.get("FJORD_UPDATE_GOLDEN"):
        for path, content in release.files.items():
            (GOLDEN / path).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / path).write_bytes(content)
    expected = {str(p.relative_to(GOLDEN)): p.read_bytes() for p in GOLDEN.rglob("*.yaml")}
    assert release.files == expected


def test_layering_defaults_repo_values_environment_and_dynamic(app: Path) -> None:
    dynamic = DynamicConfig(
        5, {"environments": {"tt02": {"chart": {"values": {"replicaCount": 7}}}}}
    )
    release = render_app(app, dynamic=dynamic)
    tt02 = kinds(release.manifest("tt02"))
    production = kinds(release.manifest("production"))
    assert tt02[("Deployment", "chart-app")]["spec"]["replicas"] == 7  # dynamic config
    assert production[("Deployment", "chart-app")]["spec"]["replicas"] == 3  # environment
    service = production[("Service", "chart-app")]
    assert service["spec"]["ports"][0]["port"] == 80  # chart default
    common = production[("ConfigMap", "chart-app-common")]
    assert common["data"] == {"greeting": "hello"}  # subchart value from fjord.yaml


def test_platform_facts_are_injected_for_charts_that_ask(app: Path) -> None:
    deployment = kinds(render_app(app).manifest("production"))[("Deployment", "chart-app")]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/fjord-demo/chart-app:2.0.0"
    assert container["env"] == [{"name": "ENVIRONMENT", "value": "production"}]
    volume = deployment["spec"]["template"]["spec"]["volumes"][0]
    assert volume["secret"]["secretName"] == "chart-app-maskinporten"


def test_notes_tests_and_empty_templates_are_dropped() -> None:
    objects = kinds(render_app(CHART_APP).manifest("tt02"))
    assert ("Pod", "chart-app-test") not in objects
    assert ("ConfigMap", "chart-app-extra") not in objects  # rendered empty
    assert {k for k, _ in objects} == {"ConfigMap", "Deployment", "Service", "MaskinportenClient"}


def test_chart_objects_are_adopted_into_the_namespace_with_labels() -> None:
    for doc in yaml.safe_load_all(render_app(CHART_APP).manifest("tt02")):
        assert doc["metadata"]["namespace"] == "digdir-chart-app"
        assert doc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "fjord"


def test_values_schema_violation_is_a_render_error(app: Path) -> None:
    spec = app / "fjord.yaml"
    spec.write_text(spec.read_text().replace("replicaCount: 2", "replicaCount: zero"))
    with pytest.raises(RenderError) as caught:
        render_app(app)
    assert "values rejected" in caught.value.message
    assert "/replicaCount" in caught.value.message
    assert caught.value.file == "./chart/values.schema.json"


def test_template_error_names_the_chart_file(app: Path) -> None:
    (app / "chart" / "templates" / "broken.yaml").write_text(
        "kind: ConfigMap\nname: {{ .Values.missing.deeper }}\n"
    )
    with pytest.raises(RenderError) as caught:
        render_app(app)
    assert caught.value.file == "chart-app/templates/broken.yaml:2"
    assert "nil pointer" in caught.value.message


def test_chart_path_traversal_is_rejected(app: Path) -> None:
    spec = app / "fjord.yaml"
    (app.parent / "elsewhere").mkdir()
    spec.write_text(spec.read_text().replace("path: ./chart", "path: chart/../../elsewhere"))
    with pytest.raises(SpecError, match="inside the app's repository"):
        render_app(app)


def test_chart_directory_symlinked_out_of_the_repository_is_rejected(app: Path) -> None:
    outside = app.parent / "outside-chart"
    shutil.move(app / "chart", outside)
    os.symlink(outside, app / "chart")
    with pytest.raises(RenderError, match="points outside the app's repository"):
        render_app(app)


def test_symlink_escaping_the_chart_is_rejected(app: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stolen}\n")
    os.symlink(secret, app / "chart" / "templates" / "stolen.yaml")
    with pytest.raises(RenderError, match="symlink points outside the chart directory"):
        render_app(app)


def test_symlinked_directory_escaping_the_chart_is_rejected(app: Path, tmp_path: Path) -> None:
    os.symlink(tmp_path, app / "chart" / "templates" / "outside")
    with pytest.raises(RenderError, match="symlink points outside"):
        render_app(app)


def test_file_dependency_outside_the_repository_is_rejected(app: Path, tmp_path: Path) -> None:
    shutil.copytree(app / "libs" / "common", tmp_path / "common")
    chart = app / "chart" / "Chart.yaml"
    outside = os.path.relpath(tmp_path / "common", app / "chart")
    chart.write_text(chart.read_text().replace("file://../libs/common", f"file://{outside}"))
    with pytest.raises(RenderError, match="outside the app's repository"):
        render_app(app)


def test_remote_dependencies_must_be_vendored(app: Path) -> None:
    chart = app / "chart" / "Chart.yaml"
    chart.write_text(
        chart.read_text().replace("file://../libs/common", "https://charts.example.org")
    )
    with pytest.raises(RenderError, match="is not vendored"):
        render_app(app)


def test_rendering_does_not_write_into_the_app(app: Path) -> None:
    before = sorted(str(p.relative_to(app)) for p in app.rglob("*"))
    render_app(app)
    assert sorted(str(p.relative_to(app)) for p in app.rglob("*")) == before


def test_chart_objects_failing_checks_are_reported_with_their_template(app: Path) -> None:
    (app / "chart" / "templates" / "role.yaml").write_text(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n"
        "metadata: {name: escalate}\nrules: []\n"
    )
    with pytest.raises(CheckError) as caught:
        render_app(app, environments=["tt02"])
    (failure,) = caught.value.failures
    assert failure.file == "tt02/chart-app.yaml (from chart-app/templates/role.yaml)"
    assert failure.object == "ClusterRole/digdir-chart-app/escalate"


@pytest.mark.parametrize("example", ["app-with-chart", "platform-app"])
def test_examples_render(example: str) -> None:
    release = render_app(EXAMPLES / example)
    assert set(release.files) == {f"tt02/{release.app}.yaml", f"production/{release.app}.yaml"}
