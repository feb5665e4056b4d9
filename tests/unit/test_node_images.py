"""Images built here: the same inputs give the same digest; the layout containerd imports."""

from __future__ import annotations

import io
import json
import tarfile

from fjord.devcluster import images
from fjord.devcluster.images import Entry, ImageConfig


def _image(content: bytes) -> images.Image:
    return images.build_image(
        [images.layer([Entry("app/server.py", content), Entry("app/bin", link="/usr/bin")])],
        ImageConfig(entrypoint=("/usr/bin/python3", "/app/server.py"), ports=(8080,)),
    )


def test_the_same_inputs_give_the_same_digest_and_other_inputs_another() -> None:
    assert _image(b"print(1)\n").digest == _image(b"print(1)\n").digest
    assert _image(b"print(1)\n").digest != _image(b"print(2)\n").digest


def test_a_layer_lists_every_parent_directory_with_normalised_headers() -> None:
    built = images.layer([Entry("usr/local/lib/x.py", b"x"), Entry("app/a", b"a", mode=0o755)])
    with tarfile.open(fileobj=io.BytesIO(built.blob), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == [
        "app",
        "app/a",
        "usr",
        "usr/local",
        "usr/local/lib",
        "usr/local/lib/x.py",
    ]
    assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in members.values())
    assert members["usr/local"].isdir()
    assert members["app/a"].mode == 0o755


def test_the_image_runs_as_an_unprivileged_user() -> None:
    image = _image(b"")
    config_digest = image.document["config"]["digest"]
    config = json.loads(image.blobs[config_digest])
    assert config["config"]["User"] == "65534:65534"
    assert config["rootfs"]["diff_ids"][0].startswith("sha256:")
    image.check_complete()


def test_the_oci_archive_names_the_image_for_containerd() -> None:
    image = _image(b"")
    archive = images.oci_archive(image, "fjord.local/probe:1")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = set(tar.getnames())
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    assert {"oci-layout", "index.json", f"blobs/sha256/{image.digest[7:]}"} <= names
    assert all(f"blobs/sha256/{d[7:]}" in names for d in image.blobs)
    entry = index["manifests"][0]
    assert entry["digest"] == image.digest
    assert entry["annotations"]["io.containerd.image.name"] == "fjord.local/probe:1"


def test_the_pause_image_is_a_static_binary_built_once() -> None:
    first_name, first = images.pause_image()
    second_name, second = images.pause_image()
    assert (first_name, first.digest) == (second_name, second.digest)
    binary = images.pause_binary().read_bytes()
    assert binary.startswith(b"\x7fELF")
    assert PT_INTERP not in _program_header_types(binary)  # static: no loader in the image


PT_INTERP = 3


def _program_header_types(elf: bytes) -> set[int]:
    offset = int.from_bytes(elf[0x20:0x28], "little")
    size = int.from_bytes(elf[0x36:0x38], "little")
    count = int.from_bytes(elf[0x38:0x3A], "little")
    return {
        int.from_bytes(elf[offset + i * size : offset + i * size + 4], "little")
        for i in range(count)
    }
