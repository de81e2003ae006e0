"""C2SP tlog-tiles: tile paths (the one strict grammar) and entry bundles.

The tiles themselves and proofs from them are the log's: tests/unit/log/test_log_tiles.py."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyless.errors import InvalidInput, NotFound
from keyless.formats.tiles import (
    decode_entry_bundle,
    encode_entry_bundle,
    encode_index,
    entries_path,
    parse_entries_path,
    parse_tile_path,
    parse_tile_request,
    tile_path,
)

# --- paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "encoded"),
    [
        (0, "000"),
        (5, "005"),
        (999, "999"),
        (1000, "x001/000"),
        (1234067, "x001/x234/067"),
        (10**9, "x001/x000/x000/000"),
    ],
)
def test_encode_index(index: int, encoded: str) -> None:
    assert encode_index(index) == encoded


def test_tile_paths() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(0, 1234067, 256) == "tile/0/x001/x234/067"
    assert tile_path(1, 0, 7) == "tile/1/000.p/7"
    assert tile_path(63, 1) == "tile/63/001"
    assert entries_path(1000) == "tile/entries/x001/000"
    assert entries_path(3, 255) == "tile/entries/003.p/255"
    assert parse_tile_path("tile/0/x001/x234/067") == (0, 1234067, None)
    assert parse_tile_path("tile/12/000.p/1") == (12, 0, 1)
    assert parse_entries_path("tile/entries/x001/000.p/9") == (1000, 9)
    assert parse_entries_path("tile/entries/000") == (0, None)
    for bad in [(64, 0, None), (-1, 0, None), (0, -1, None), (0, 0, 0), (0, 0, 257)]:
        with pytest.raises(InvalidInput):
            tile_path(*bad)


@pytest.mark.parametrize(
    "path",
    [
        "tile/00/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/0/x000/005",
        "tile/0/1234",
        "tile/0/12",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/07",
        "tile/0/x001",
        "/tile/0/000",
        "tile/0/000/",
        "tile/entries/000",
        "tile/0/x001/x234/067.p/",
        "tile/0/000.p/5/",
        "tile/0/000\n",
        "tile/0/x01/000",
        "tile/0/X001/000",
        "tile/0/000.P/5",
        "tiles/0/000",
        "tile/0/+01",
        "tile/0/\u0660\u0660\u0660",
    ],
)
def test_parse_tile_path_is_strict(path: str) -> None:
    with pytest.raises(InvalidInput):
        parse_tile_path(path)


@pytest.mark.parametrize(
    "path", ["tile/entries/x000/001", "tile/entries/000.p/0", "tile/0/000", "tile/entries/1"]
)
def test_parse_entries_path_is_strict(path: str) -> None:
    with pytest.raises(InvalidInput):
        parse_entries_path(path)


@pytest.mark.parametrize(
    ("path", "kwargs", "expected"),
    [
        ("0/000", {}, (0, 0, None)),
        ("entries/x001/000.p/9", {}, (None, 1000, 9)),
        ("data/005.p/17", {"bundles": "data", "max_level": 5}, (None, 5, 17)),
        ("0/x009/x223/x372/x036/x854/x775/807", {}, (0, 2**63 - 1, None)),
    ],
)
def test_parse_tile_request(path: str, kwargs: dict[str, Any], expected: object) -> None:
    assert parse_tile_request(path, **kwargs) == expected


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [("6/000", {"max_level": 5}), ("entries/000", {"bundles": "data"}), ("0/000\n", {}),
     ("0/000.p/5\n", {}), ("0/x000/" + "x999/" * 1500 + "999", {})],
)
def test_parse_tile_request_is_strict(path: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        parse_tile_request(path, **kwargs)


@pytest.mark.parametrize(
    "path",
    ["tile/0/" + "x999/" * 1500 + "999", "tile/0/x009/x223/x372/x036/x854/x775/808"],
)
def test_tile_index_beyond_int64_names_no_tile(path: str) -> None:
    """Far too many digits for int() must not escape as ValueError (a 500 over HTTP)."""
    with pytest.raises(NotFound, match="beyond any log's size"):
        parse_tile_path(path)
    with pytest.raises(NotFound, match="beyond any log's size"):
        parse_tile_request("0/x001/000", max_index=999)


@settings(deadline=None)
@given(st.integers(0, 63), st.integers(0, 2**60), st.one_of(st.none(), st.integers(1, 255)))
def test_path_round_trip(level: int, index: int, width: int | None) -> None:
    assert parse_tile_path(tile_path(level, index, width)) == (level, index, width)
    assert parse_entries_path(entries_path(index, width)) == (index, width)


# --- entry bundles ---------------------------------------------------------------------------


@settings(deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=256))
def test_entry_bundle_round_trip(entries: list[bytes]) -> None:
    data = encode_entry_bundle(entries)
    assert len(data) == sum(2 + len(e) for e in entries)
    assert decode_entry_bundle(data) == entries
    assert decode_entry_bundle(data, len(entries)) == entries


def test_entry_bundle_format_and_limits() -> None:
    assert encode_entry_bundle([b"ab", b""]) == b"\x00\x02ab\x00\x00"
    assert decode_entry_bundle(b"\x01\x00" + b"x" * 256) == [b"x" * 256]
    assert decode_entry_bundle(encode_entry_bundle([b"y" * 0xFFFF])) == [b"y" * 0xFFFF]
    with pytest.raises(InvalidInput):
        encode_entry_bundle([b"y" * 0x10000])
    with pytest.raises(InvalidInput):
        encode_entry_bundle([b""] * 257)
    for bad in [b"\x00", b"\x00\x03ab", b"\x00\x02ab\x00"]:
        with pytest.raises(InvalidInput):
            decode_entry_bundle(bad)
    with pytest.raises(InvalidInput):
        decode_entry_bundle(b"\x00\x00" * 257)
    with pytest.raises(InvalidInput):
        decode_entry_bundle(b"\x00\x00", 2)
