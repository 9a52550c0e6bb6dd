"""The chain's canonical JSON against the renderer the first chains were sealed with.

Owns the property that ``canonical`` writes, for any record, the very bytes structlog's
``JSONRenderer(sort_keys=True, separators=(",", ":"))`` wrote (the form every existing
trail was sealed in and ``audit verify`` recomputes): strings of any code point, big
integers, floats with NaN and infinities, nesting, and values JSON has no form for. It
must never need a file.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit.chain import canonical

FIRST_RENDERER = structlog.processors.JSONRenderer(sort_keys=True, separators=(",", ":"))

leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.builds(Decimal, st.integers())  # no JSON form: written as its repr()
    | st.frozensets(st.integers(), max_size=3)
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)
records = st.dictionaries(st.text(max_size=12), values, max_size=10)


@settings(max_examples=400, deadline=None)
@given(records)
def test_canonical_writes_what_the_first_chains_were_sealed_with(record: dict[str, Any]) -> None:
    assert canonical(record) == FIRST_RENDERER(None, "", dict(record))
