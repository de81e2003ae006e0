"""Hostile git signatures: whatever the bytes, the parsers answer InvalidInput or a result."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st
from test_cms import signed
from test_tlogpb import ENTRY as SAMPLE_ENTRY

from keyless.errors import InvalidInput
from keyless.git import cms
from keyless.git.tlogpb import decode_entry, encode_entry

VALID = signed(log_entry=encode_entry(SAMPLE_ENTRY), timestamps=())


def parse_or_refuse(data: bytes) -> None:
    try:
        parsed = cms.parse(cms.dearmor(data))
    except InvalidInput:
        return
    if parsed.log_entry is not None:
        try:
            decode_entry(parsed.log_entry)
        except InvalidInput:
            return


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(1, 255)), max_size=4))
def test_bit_flips(flips: list[tuple[int, int]]) -> None:
    data = bytearray(VALID)
    for at, mask in flips:
        data[at] ^= mask
    parse_or_refuse(bytes(data))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(VALID)))
def test_truncations(cut: int) -> None:
    parse_or_refuse(VALID[:cut])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_protobuf(data: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        decode_entry(data)
