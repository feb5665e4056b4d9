"""``ControlSettings.from_env``: FJORD_FLUX_INTERVAL reaches sync roots and bootstrap manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fjord.control import ControlSettings
from fjord.control.bootstrap import BootstrapInput, bootstrap_objects
from fjord.control.syncroot import sync_root_files


def _intervals(settings: ControlSettings) -> set[Any]:
    files = sync_root_files(settings, "ttd", "tt02", ["skjema"])
    return {
        doc["spec"]["interval"]
        for doc in yaml.safe_load_all(files["apps/skjema.yaml"])
        if doc and "interval" in doc.get("spec", {})
    }


def test_default_interval_is_ten_minutes(tmp_path: Path) -> None:
    settings = ControlSettings.from_env({"FJORD_DATA_DIR": str(tmp_path)})
    assert settings.flux_interval == "10m"
    assert _intervals(settings) == {"10m"}


@pytest.mark.parametrize("value", ["30s", "1m30s", "500ms", "2h", " 45s "])
def test_interval_from_env_is_written_into_sync_roots(tmp_path: Path, value: str) -> None:
    settings = ControlSettings.from_env(
        {"FJORD_DATA_DIR": str(tmp_path), "FJORD_FLUX_INTERVAL": value}
    )
    assert settings.flux_interval == value.strip()
    # Both the app's OCIRepository and its Kustomization follow the setting.
    assert _intervals(settings) == {value.strip()}


def test_interval_from_env_is_written_into_bootstrap_manifests(tmp_path: Path) -> None:
    settings = ControlSettings.from_env(
        {"FJORD_DATA_DIR": str(tmp_path), "FJORD_FLUX_INTERVAL": "30s"}
    )
    objects = bootstrap_objects(
        settings,
        BootstrapInput("ttd", "tt02", "ttd.tt02.tt02-1", token="t0ken", public_key_pem=b"PEM"),
    )
    root = {o["kind"]: o["spec"] for o in objects if o["metadata"].get("name") == "fjord-sync"}
    assert root["OCIRepository"]["interval"] == "30s"
    assert root["Kustomization"]["interval"] == "30s"


def test_empty_interval_keeps_the_default(tmp_path: Path) -> None:
    settings = ControlSettings.from_env(
        {"FJORD_DATA_DIR": str(tmp_path), "FJORD_FLUX_INTERVAL": ""}
    )
    assert settings.flux_interval == "10m"


@pytest.mark.parametrize("value", ["30", "soon", "1d", "-5s", "5 m"])
def test_invalid_interval_is_refused_with_the_variable_named(value: str) -> None:
    with pytest.raises(ValueError, match="FJORD_FLUX_INTERVAL"):
        ControlSettings.from_env({"FJORD_FLUX_INTERVAL": value})


def test_kustomization_timeout_from_the_environment() -> None:
    settings = ControlSettings.from_env({"FJORD_KUSTOMIZATION_TIMEOUT": "60s"})
    assert settings.kustomization_timeout == "60s"
    with pytest.raises(ValueError, match="FJORD_KUSTOMIZATION_TIMEOUT"):
        ControlSettings.from_env({"FJORD_KUSTOMIZATION_TIMEOUT": "a minute"})


def test_pipeline_settings_from_env_and_their_defaults(tmp_path: Path) -> None:
    defaults = ControlSettings.from_env({"FJORD_DATA_DIR": str(tmp_path)})
    assert defaults.lease_seconds <= 30
    assert (defaults.workers, defaults.receiver_timeout_seconds) == (4, 10.0)
    tuned = ControlSettings.from_env(
        {
            "FJORD_DATA_DIR": str(tmp_path),
            "FJORD_LEASE_SECONDS": "5",
            "FJORD_WORKERS": "2",
            "FJORD_POLL_SECONDS": "0.2",
            "FJORD_RECEIVER_TIMEOUT": "1.5",
        }
    )
    assert (tuned.lease_seconds, tuned.workers, tuned.poll_seconds) == (5.0, 2, 0.2)
    assert tuned.receiver_timeout_seconds == 1.5
    for variable, value in (("FJORD_LEASE_SECONDS", "0"), ("FJORD_WORKERS", "many")):
        with pytest.raises(ValueError, match=f"{variable}='{value}' is not a positive number"):
            ControlSettings.from_env({"FJORD_DATA_DIR": str(tmp_path), variable: value})
