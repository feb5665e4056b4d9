"""The sample apps as real images in their org's registry, for the local platform's real nodes.

Each example in ``examples/`` names its image in ``fjord.yaml`` (``ghcr.io/fjord-demo/…``);
locally the same service is built from ``examples/sample-service`` (see ``appimages``), pushed
to the org's registry as ``images/<app>:<tag>`` with the org's credentials, and the app's
dynamic config points its ``image`` there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fjord.artifact.oci import Image
from fjord.devcluster.appimages import SampleApp, sample_image
from fjord.stores.registry import RegistryStore

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = REPO_ROOT / "examples"
SAMPLES: tuple[tuple[str, str], ...] = (
    ("ttd/skjema", "platform-app"),
    ("digdir/varsel", "app-with-chart"),
)


@dataclass(frozen=True)
class BuiltImage:
    app: str  # org/app
    repository: str
    tag: str
    image: Image

    def reference(self, registry_host: str) -> str:
        """The image by digest: what was built is exactly what runs."""
        return f"{registry_host}/{self.repository}:{self.tag}@{self.image.digest}"


def sample_app(example: Path) -> SampleApp:
    """What the image of an example needs from its ``fjord.yaml``: name, version, port."""
    spec: dict[str, Any] = yaml.safe_load((example / "fjord.yaml").read_text())
    tag = str(spec["image"]).rsplit(":", 1)[-1]
    return SampleApp(name=str(spec["app"]), version=tag, port=int(spec.get("port", 8080)))


def build_images(
    samples: tuple[tuple[str, str], ...] = SAMPLES, examples: Path = EXAMPLES
) -> dict[str, BuiltImage]:
    """Build every sample app's image (the Debian base is built once and cached)."""
    built = {}
    for name, example in samples:
        app = sample_app(examples / example)
        built[name] = BuiltImage(name, f"images/{app.name}", app.version, sample_image(app))
    return built


async def push_images(
    registries: Mapping[str, Mapping[str, Any]], built: Mapping[str, BuiltImage]
) -> None:
    """Push each app's image to its org's registry (``registries``: org → host, credentials)."""

    async def push(item: BuiltImage) -> None:
        registry = registries[item.app.split("/")[0]]
        async with RegistryStore(
            f"http://{registry['host']}",
            username=registry["username"],
            password=registry["password"],
        ) as store:
            await store.push(item.repository, item.image, tag=item.tag)

    await asyncio.gather(*(push(item) for item in built.values()))
