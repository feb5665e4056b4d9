"""The fast YAML representer writes exactly what PyYAML's SafeRepresenter writes."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fjord.render.yamlout import _Dumper, dump


def reference(obj: Any) -> str:
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


keys = st.one_of(st.text(max_size=6), st.sampled_from(["a", "b", "true", "1", "-", "a: b"]))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.sampled_from(["", "yes", "null", "~", "0x1F", "1:20", "25%", "- a", "a\nb", " x", "é"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=4),
        st.dictionaries(st.one_of(keys, st.integers(), st.none()), inner, max_size=3),
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(values)
def test_same_text_as_safe_representer(obj: Any) -> None:
    assert dump(obj) == reference(obj)


def test_shared_objects_become_anchors_as_before() -> None:
    labels = {"app": "x"}
    items = [1, 2]
    obj = {"metadata": {"labels": labels}, "selector": labels, "a": items, "b": [items]}
    assert "&id001" in dump(obj)
    assert dump(obj) == reference(obj)


def test_unorderable_keys_and_other_types_take_the_usual_path() -> None:
    obj = {1: "a", "b": 2, None: [1.5, OrderedDict(x=1)], (): "tuple"}
    try:
        expected = reference(obj)
    except yaml.representer.RepresenterError:
        expected = None
    if expected is None:
        try:
            dump(obj)
        except yaml.representer.RepresenterError:
            return
        raise AssertionError("dump accepted what SafeRepresenter rejects")
    assert dump(obj) == expected
    plain = {1: "a", "b": 2, None: [1.5, {"x": 1}]}
    assert dump(plain) == reference(plain)


def test_str_subclass_is_represented_like_before() -> None:
    class Name(str):
        pass

    obj = {"name": Name("x")}
    try:
        expected = reference(obj)
    except yaml.representer.RepresenterError:
        expected = None
    if expected is None:
        try:
            dump(obj)
        except yaml.representer.RepresenterError:
            return
        raise AssertionError("dump accepted what SafeRepresenter rejects")
    assert dump(obj) == expected
