"""Hostile inputs: JSON of any shape (deep, huge numbers, odd strings), text, and headers."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

NUMBERS = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 2**63, 1e308, -1e308, 10**300]),
)
TEXT = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["", " ", "SP1 ", "sp1 AAAA", "+919876543210", "9" * 5000, "\x00", "\ud7ff"]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=5)),
    max_leaves=25,
)


def deep(depth: int) -> bytes:
    """JSON nested `depth` levels deep."""
    return b"[" * depth + b"]" * depth


def dumps(value: Any) -> bytes:
    """JSON bytes, as a sender would post them (huge integers included)."""
    return json.dumps(value, allow_nan=False).encode("utf-8", "surrogatepass")


BODIES = st.one_of(
    JSON.map(dumps),
    st.binary(max_size=300),
    st.integers(min_value=1, max_value=20_000).map(deep),
    st.just(b'{"from": ' + b"1" * 5000 + b', "body": "x"}'),
    st.fixed_dictionaries(
        {"from": TEXT, "body": TEXT},
        optional={"received_at": SCALARS, "event": TEXT, "payload": JSON, "data": JSON},
    ).map(dumps),
)
HEADER = st.one_of(st.none(), TEXT, st.sampled_from(["9" * 400, "1" * 5000, "-1", "1e9"]))
