"""CRD generation: structural schemas from the pydantic models, committed files up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fjord.render.crds import crd_files
from fjord.spec.crd import infra_crds, structural_schema
from fjord.spec.infra import AppCredentialsSpec, MaskinportenClientSpec

REPO = Path(__file__).resolve().parents[2]


def _walk(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        found.append(node)
        for key, value in node.items():
            if key == "properties":
                for sub in value.values():
                    found += _walk(sub)
            else:
                found += _walk(value)
    elif isinstance(node, list):
        for item in node:
            found += _walk(item)
    return found


def test_schemas_are_structural() -> None:
    for model in (AppCredentialsSpec, MaskinportenClientSpec):
        schema = structural_schema(model)
        for node in _walk(schema):
            assert "$ref" not in node
            assert "anyOf" not in node
            assert "title" not in node
            assert node.get("default", 0) is not None
            assert node.get("additionalProperties") is not False
            if "properties" in node or "items" in node:
                assert node["type"] in ("object", "array")


def test_optional_fields_become_nullable() -> None:
    schema = structural_schema(AppCredentialsSpec)
    assert schema["properties"]["expiresAt"] == {
        "description": "the resource deletes itself after",
        "format": "date-time",
        "nullable": True,
        "type": "string",
    }
    assert schema["properties"]["redis"]["nullable"] is True
    assert schema["properties"]["redis"]["required"] == ["keyPrefix", "secretName"]


def test_crds_have_status_subresource_and_printer_columns() -> None:
    by_kind = {crd["spec"]["names"]["kind"]: crd for crd in infra_crds()}
    assert set(by_kind) == {"MaskinportenClient", "AppCredentials"}
    for crd in by_kind.values():
        version = crd["spec"]["versions"][0]
        assert crd["spec"]["group"] == "fjord.dev"
        assert crd["spec"]["scope"] == "Namespaced"
        assert version["name"] == "v1alpha1"
        assert version["subresources"] == {"status": {}}
        columns = [c["name"] for c in version["additionalPrinterColumns"]]
        assert columns[-3:] == ["Ready", "Reason", "Age"]
    status = by_kind["AppCredentials"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert status["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True


def test_committed_crds_are_up_to_date() -> None:
    directory = REPO / "deploy" / "crds"
    committed = {p.name: p.read_bytes() for p in directory.glob("*.yaml")}
    assert committed == crd_files(), "run `python -m fjord.render.crds` and commit deploy/crds/"
