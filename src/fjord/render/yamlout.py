"""Deterministic YAML: the same objects always serialise to the same bytes.

Keys are sorted (which also yields Kubernetes' usual apiVersion, kind, metadata, spec order),
lines are never wrapped, and libyaml's emitter is used when available because rendering
thousands of apps is dominated by serialisation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

try:
    _Dumper: type[yaml.SafeDumper] = yaml.CSafeDumper  # type: ignore[assignment,misc,unused-ignore]
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Dumper = yaml.SafeDumper


def dump(obj: Any) -> str:
    """One YAML document, canonical form."""
    text: str = yaml.dump(
        obj,
        Dumper=_Dumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 16,
        indent=2,
    )
    return text


def dump_all(objects: Iterable[Any]) -> bytes:
    """A multi-document YAML stream, each document starting with ``---``."""
    return "".join("---\n" + dump(obj) for obj in objects).encode()
