"""The fast JCS path must produce exactly what the reference RFC 8785 serializer produces."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from keyless.services.tlog.kinds.common import jcs
from keyless.services.tlog.responses import Proof, v2_entry, v2_entry_json

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


@pytest.mark.parametrize("hashes", [0, 1, 17])
def test_the_v2_answer_is_written_exactly_as_json_dumps_would(hashes: int) -> None:
    """The write path writes its JSON answer directly: byte for byte the generic encoder's,
    whatever the checkpoint holds (newlines, an em dash, quotes, a backslash)."""
    note = 'ex.org/"log"\\ \n42\nroot=\n\n\u2014 ex.org/log AAAA\n'.encode()
    proof = Proof(41, 42, os.urandom(32), [os.urandom(32) for _ in range(hashes)], note)
    fields = {"index": 41, "log_id": os.urandom(32), "kind": "hashedrekord",
              "version": "0.0.2", "body": os.urandom(700), "proof": proof}
    expected = json.dumps(v2_entry(**fields), separators=(",", ":")).encode()
    assert v2_entry_json(**fields) == expected


def test_the_v2_answer_follows_the_checkpoint_from_entry_to_entry() -> None:
    """Entries of one batch share a checkpoint (its JSON form is kept); the next batch's
    checkpoint, or an older one, is written as it is."""
    notes = [b"ex.org/log\n1\nAAAA\n\n\xe2\x80\x94 ex.org/log x\n",
             b"ex.org/log\n2\nBBBB\n\n\xe2\x80\x94 ex.org/log y\n"]
    for note in [notes[0], notes[0], notes[1], notes[0], bytearray(notes[1])]:
        proof = Proof(0, 1, os.urandom(32), [], bytes(note))
        fields = {"index": 0, "log_id": os.urandom(32), "kind": "hashedrekord",
                  "version": "0.0.2", "body": b"{}", "proof": proof}
        assert v2_entry_json(**fields) == json.dumps(v2_entry(**fields),
                                                     separators=(",", ":")).encode()
