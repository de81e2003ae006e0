"""RFC 6962 leaf / static-ct TileLeaf encodings: round trips and hostile bytes."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from keyless.errors import InvalidInput
from keyless.formats.sct import ENTRY_TYPE_PRECERT, ENTRY_TYPE_X509
from keyless.services.ctlog.entries import (
    TimestampedEntry,
    extra_data,
    parse_tile_leaf,
    tile_leaf,
    tree_head_signed_data,
)


@given(ts=st.integers(0, 2**64 - 1), cert=st.binary(max_size=300), ext=st.binary(max_size=20),
       precert=st.booleans(), chain=st.lists(st.binary(min_size=1, max_size=50), max_size=3))
def test_round_trips(ts: int, cert: bytes, ext: bytes, precert: bool, chain: list[bytes]) -> None:
    entry = TimestampedEntry(ts, ENTRY_TYPE_PRECERT if precert else ENTRY_TYPE_X509, cert,
                             b"\x07" * 32 if precert else b"", ext)
    assert TimestampedEntry.from_merkle_tree_leaf(entry.merkle_tree_leaf()) == entry
    leaf = tile_leaf(entry, b"PRE" if precert else None, chain)
    parsed = parse_tile_leaf(leaf)
    assert parsed.entry == entry and len(parsed.chain_fingerprints) == len(chain)
    extra = extra_data(parsed, chain)
    if precert:
        assert extra[:6] == b"\x00\x00\x03PRE"


def test_layout_matches_rfc6962() -> None:
    entry = TimestampedEntry(1, ENTRY_TYPE_X509, b"C")
    assert entry.merkle_tree_leaf() == bytes.fromhex("0000" "0000000000000001" "0000" "000001") + (
        b"C\x00\x00")
    assert tree_head_signed_data(2, 3, b"\x09" * 32) == bytes.fromhex(
        "0001" "0000000000000002" "0000000000000003") + b"\x09" * 32


@given(st.binary(max_size=120))
def test_hostile_bytes_raise_invalid_input_only(data: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        TimestampedEntry.from_merkle_tree_leaf(data)
    with contextlib.suppress(InvalidInput):
        parse_tile_leaf(data)
