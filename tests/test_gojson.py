"""mesosdns.gojson against bodies written out by hand from Go's encoding/json
rules (json.MarshalIndent(v, " ", " "), Go 1.11)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesosdns.gojson import marshal_indent


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({}, b"{}"),
        ([], b"[]"),
        ("x", b'"x"'),
        (None, b"null"),
        ([1], b"[\n  1\n ]"),
        ({"a": [1, 2], "b": {}}, b'{\n  "a": [\n   1,\n   2\n  ],\n  "b": {}\n }'),
        ({"a": {"b": {"c": [None]}}},
         b'{\n  "a": {\n   "b": {\n    "c": [\n     null\n    ]\n   }\n  }\n }'),
        ("<a&b>", b'"\\u003ca\\u0026b\\u003e"'),
        ("\u2028\u2029", b'"\\u2028\\u2029"'),
        ("\b\f\n\t\x01", b'"\\u0008\\u000c\\n\\t\\u0001"'),
        ("\\b \\f", b'"\\\\b \\\\f"'),  # backslash + b stays as it is
        ("\\\b", b'"\\\\\\u0008"'),
        ("é ✓", '"é ✓"'.encode()),
        ("  two  spaces\\n", b'"  two  spaces\\\\n"'),
    ],
)
def test_go_shapes(value: Any, expected: bytes) -> None:
    assert marshal_indent(value) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@given(json_values)
def test_same_value_and_go_layout(value: Any) -> None:
    """The bytes decode to the value, and every line is laid out as Go's."""
    data = marshal_indent(value)
    assert json.loads(data) == value
    assert data == data.strip()
    lines = data.split(b"\n")
    for line in lines[1:]:
        assert line.startswith(b" ")
    assert not any(c in data for c in b"<>&")
