"""The fast JCS path must produce exactly what the reference RFC 8785 serializer produces."""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from keyless.services.tlog.kinds.common import jcs

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
@settings(max_examples=400, deadline=None)
def test_jcs_matches_rfc8785(value: Any) -> None:
    assert jcs(value) == rfc8785.dumps(value)


def test_jcs_escapes_and_non_ascii() -> None:
    value = {"b": 'quote" back\\ nl\n tab\t ctl\x01 del\x7f', "a": "é€𝄞", "é": 1, "z": [True]}
    assert jcs(value) == rfc8785.dumps(value)
