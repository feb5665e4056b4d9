"""Deterministic YAML: the same objects always serialise to the same bytes.

Keys are sorted (which also yields Kubernetes' usual apiVersion, kind, metadata, spec order),
lines are never wrapped, and libyaml's emitter is used when available because rendering
thousands of apps is dominated by serialisation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

try:
    _Dumper: type[yaml.SafeDumper] = yaml.CSafeDumper  # type: ignore[assignment,misc,unused-ignore]
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Dumper = yaml.SafeDumper

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class _FastDumper(_Dumper):  # type: ignore[misc,valid-type,unused-ignore]
    """SafeRepresenter with a shortcut for plain ``str``, ``dict`` and ``list``.

    It builds exactly the nodes SafeRepresenter builds (same tags, styles, key order, and
    anchors for an object met twice) with fewer calls; every other type takes the usual path.
    Rendering many apps spends much of its time here.
    """

    def represent_data(self, data: Any) -> Node:
        cls = type(data)
        if cls is str:
            return ScalarNode(_STR, data, style=self.default_style)
        if (cls is dict or cls is list) and self.default_flow_style is not None:
            key = id(data)
            node: Node | None = self.represented_objects.get(key)
            if node is not None:
                return node  # the serializer turns it into an alias, as SafeRepresenter's does
            self.object_keeper.append(data)
            represent = self.represent_data
            if cls is list:
                items: list[Node] = []
                node = SequenceNode(_SEQ, items, flow_style=self.default_flow_style)
                self.represented_objects[key] = node
                for item in data:
                    items.append(represent(item))
                return node
            pairs: list[tuple[Node, Node]] = []
            node = MappingNode(_MAP, pairs, flow_style=self.default_flow_style)
            self.represented_objects[key] = node
            mapping = list(data.items())
            if self.sort_keys:
                with contextlib.suppress(TypeError):  # unorderable keys stay in insertion order
                    mapping = sorted(mapping)
            for item_key, item_value in mapping:
                pairs.append((represent(item_key), represent(item_value)))
            return node
        result: Node = super().represent_data(data)
        return result


def dump(obj: Any) -> str:
    """One YAML document, canonical form."""
    text: str = yaml.dump(
        obj,
        Dumper=_FastDumper,
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
