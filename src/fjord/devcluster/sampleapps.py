"""The sample apps as real images in their org's registry, for the local platform's real nodes.

Each example in ``examples/`` names its image in ``fjord.yaml`` (``ghcr.io/fjord-demo/…``).
Locally the service is built from ``examples/sample-service`` (see ``appimages``) and pushed
with the org's credentials to the org's registry under the same path and tag
(``fjord-demo/skjema:1.3.0``). The nodes use that registry as their mirror of ``ghcr.io``
(``node.trust_registry``), so the manifests name the image exactly as in production and no pull
leaves the machine.
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
        """Where the image is in the org's registry itself."""
        return f"{registry_host}/{self.repository}:{self.tag}"


def image_path(image: str) -> tuple[str, str]:
    """``ghcr.io/fjord-demo/skjema:1.3.0`` → (``fjord-demo/skjema``, ``1.3.0``)."""
    name, tag = image.rsplit(":", 1)
    first, _, rest = name.partition("/")
    registry_named = "." in first or ":" in first or first == "localhost"
    return (rest if registry_named and rest else name), tag


def sample_app(example: Path) -> SampleApp:
    """What the image of an example needs from its ``fjord.yaml``: name, version, port."""
    spec: dict[str, Any] = yaml.safe_load((example / "fjord.yaml").read_text())
    _, tag = image_path(str(spec["image"]))
    return SampleApp(name=str(spec["app"]), version=tag, port=int(spec.get("port", 8080)))


def build_images(
    samples: tuple[tuple[str, str], ...] = SAMPLES, examples: Path = EXAMPLES
) -> dict[str, BuiltImage]:
    """Build every sample app's image (the Debian base is built once and cached)."""
    built = {}
    for name, example in samples:
        app = sample_app(examples / example)
        spec: dict[str, Any] = yaml.safe_load((examples / example / "fjord.yaml").read_text())
        repository, tag = image_path(str(spec["image"]))
        built[name] = BuiltImage(name, repository, tag, sample_image(app))
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
