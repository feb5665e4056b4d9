"""The fast loader for charts' rendered YAML gives exactly what yaml.safe_load gives."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fjord.render.helm import _Loader

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["yes", "no", "on", "0x1F", "1e3", "~", "2026-01-01", "12:30", "null"])
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)


def both(text: str) -> tuple[list[Any], list[Any]]:
    return list(yaml.safe_load_all(text)), list(yaml.load_all(text, Loader=_Loader))


@settings(max_examples=300, deadline=None)
@given(documents, st.sampled_from([None, False, True]))
def test_same_as_safe_load_for_any_document(document: Any, flow: bool | None) -> None:
    text = yaml.safe_dump(document, default_flow_style=flow, sort_keys=False)
    expected, got = both(text)
    assert got == expected


def test_anchors_merge_keys_timestamps_and_several_documents() -> None:
    text = (
        "a: &x {k: [1, 2.5, true, null, '3']}\nb: *x\nc:\n  <<: *x\n  z: 1\n"
        "d: 2026-01-01\ne: 2026-01-01T10:00:00Z\n---\n- plain\n- !!str 12\n---\n"
    )
    expected, got = both(text)
    assert got == expected
    assert got[0]["c"] == {"k": [1, 2.5, True, None, "3"], "z": 1}
    assert got[0]["d"] == dt.date(2026, 1, 1)


def test_an_unhashable_key_is_reported_like_safe_load_does() -> None:
    with pytest.raises(yaml.constructor.ConstructorError, match="unhashable"):
        list(yaml.load_all("? [a, b]\n: 1\n", Loader=_Loader))
