"""`fjord keys generate`, `fjord release build --publish`, `verify` and `show` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fjord.devcluster.registry import LocalRegistry

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "platform-app"


def fjord(
    *args: str, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fjord.cli", *args],
        capture_output=True,
        text=True,
        check=check,
        cwd=cwd,
    )


def test_build_is_deterministic_across_processes() -> None:
    first = json.loads(
        fjord("release", "build", str(EXAMPLE), "--revision", "r1", "-o", "json").stdout
    )
    second = json.loads(
        fjord("release", "build", str(EXAMPLE), "--revision", "r1", "-o", "json").stdout
    )
    assert first["digest"] == second["digest"]
    assert first["digest"].startswith("sha256:")
    assert set(first["files"]) == {"production/skjema.yaml", "tt02/skjema.yaml"}
    other = json.loads(
        fjord("release", "build", str(EXAMPLE), "--revision", "r2", "-o", "json").stdout
    )
    assert other["digest"] != first["digest"]  # the revision is part of the artifact


def test_publish_then_verify_and_reject_a_wrong_key(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    fjord("keys", "generate", cwd=tmp_path)
    (tmp_path / "other").mkdir()
    fjord("keys", "generate", cwd=tmp_path / "other")
    store = f"oci://{registry.host}"
    built = fjord(
        "release",
        "build",
        str(EXAMPLE),
        "--publish",
        store,
        "--key",
        str(tmp_path / "cosign.key"),
        "--tag",
        "tt02",
        "-o",
        "json",
    )
    published = json.loads(built.stdout)["published"]
    assert published["tags"] == ["tt02"]
    assert published["reference"].startswith(f"{registry.host}/ttd/apps/skjema@sha256:")

    ok = fjord(
        "release",
        "verify",
        store,
        "ttd/apps/skjema:tt02",
        "--key",
        str(tmp_path / "cosign.pub"),
        "-o",
        "json",
    )
    assert json.loads(ok.stdout)["verified"] is True

    bad = fjord(
        "release",
        "verify",
        store,
        "ttd/apps/skjema:tt02",
        "--key",
        str(tmp_path / "other" / "cosign.pub"),
        check=False,
    )
    assert bad.returncode == 1
    assert "error" in bad.stderr.lower()

    # The signed provenance, verified and shown.
    shown = json.loads(
        fjord(
            "release",
            "inspect",
            store,
            "ttd/apps/skjema:tt02",
            "--key",
            str(tmp_path / "cosign.pub"),
            "-o",
            "json",
        ).stdout
    )
    assert published["provenance"].startswith("sha256:")
    assert shown["digest"] == published["reference"].rsplit("@", 1)[1]
    provenance = shown["provenance"]
    assert provenance["predicateType"] == "https://slsa.dev/provenance/v1"
    assert provenance["builder"]["id"] == "https://fjord.dev/builder"
    assert provenance["app"] == "ttd/skjema"
    assert provenance["source"]["revision"] == "local"
    assert provenance["source"]["commit"] is None  # not a git revision
    assert provenance["dynamicConfigVersion"] == 0
    names = {i["name"] for i in provenance["inputs"]}
    assert names == {"fjord.yaml", "platform-config", "dynamic-config-v0"}
    assert all(i["digest"].startswith("sha256:") for i in provenance["inputs"])
    table = fjord(
        "release", "inspect", store, "ttd/apps/skjema:tt02", "--key", str(tmp_path / "cosign.pub")
    )
    assert "https://fjord.dev/builder" in table.stdout
    assert "platform-config" in table.stdout
    refused = fjord(
        "release",
        "inspect",
        store,
        "ttd/apps/skjema:tt02",
        "--key",
        str(tmp_path / "other" / "cosign.pub"),
        check=False,
    )
    assert refused.returncode == 1


def test_a_spec_error_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "fjord.yaml").write_text("org: ttd\napp: a\nimage: x:1\nreplica: {min: 1}\n")
    result = fjord("release", "build", str(tmp_path), check=False)
    assert result.returncode == 1
    assert "fjord.yaml:4" in result.stderr
    assert "replicas" in result.stderr  # the did-you-mean hint


def test_local_build_fills_the_version_or_says_how(tmp_path: Path) -> None:
    (tmp_path / "fjord.yaml").write_text("org: ttd\napp: a\nimage: ghcr.io/ttd/a:{version}\n")
    missing = fjord("release", "build", str(tmp_path), check=False)
    assert missing.returncode == 1
    assert "fjord.yaml:3: image:" in missing.stderr

    def digest(*flags: str) -> str:
        return str(
            json.loads(fjord("release", "build", str(tmp_path), *flags, "-o", "json").stdout)[
                "digest"
            ]
        )

    filled = digest("--version", "1.4.0")
    assert filled == digest("--image", "ghcr.io/ttd/a:1.4.0")
    assert filled != digest("--version", "1.5.0")
