"""Hostile log contents: static-ct-api data tiles parsed strictly, entries of any shape."""

from __future__ import annotations

import struct

import pytest

from keyless.monitor.staticct import parse_data_tile
from keyless.monitor.tiles import BundleError


def tile_leaf(cert: bytes, *, precert: bytes | None = None, chain: int = 1) -> bytes:
    entry_type = 1 if precert is not None else 0
    head = struct.pack(">QH", 1_700_000_000_000, entry_type)
    if precert is not None:
        head += b"\x11" * 32  # issuer key hash
    entry = head + len(cert).to_bytes(3, "big") + cert + b"\x00\x00"  # no CT extensions
    extra = b"" if precert is None else len(precert).to_bytes(3, "big") + precert
    return entry + extra + (32 * chain).to_bytes(2, "big") + b"\x22" * 32 * chain


def test_x509_and_precert_leaves() -> None:
    data = tile_leaf(b"final-cert") + tile_leaf(b"tbs", precert=b"pre-cert", chain=2)
    first, second = parse_data_tile(data, 2)
    assert first.certificate == b"final-cert"
    assert first.merkle_leaf == b"\x00\x00" + data[: 8 + 2 + 3 + 10 + 2]
    assert second.certificate == b"pre-cert"
    assert second.merkle_leaf.endswith(b"tbs\x00\x00")


@pytest.mark.parametrize(("data", "width", "problem"), [
    (tile_leaf(b"c")[:-1], 1, "truncated"),
    (tile_leaf(b"c") + b"\x00", 1, "truncated"),
    (tile_leaf(b"c"), 2, "expected 2"),
    (struct.pack(">QH", 0, 7), 1, "unknown type"),
    (tile_leaf(b"c")[:-34] + b"\x00\x21" + b"\x00" * 33, 1, "malformed issuer chain"),
])
def test_malformed_data_tiles(data: bytes, width: int, problem: str) -> None:
    with pytest.raises(BundleError, match=problem):
        parse_data_tile(data, width)


@pytest.mark.parametrize("entry", [
    b"not json", b"[]", b'"x"', b'{"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": []}',
    b'{"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {"hashedRekordV002": []}}',
    b'{"apiVersion": "0.0.2", "kind": "dsse", "spec": {"dsseV002": {"signatures": "x"}}}',
    b'{"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {"hashedRekordV002": '
    b'{"signature": {"verifier": {"x509Certificate": {"rawBytes": "!!"}}}}}}',
    b'{"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {"data": "x", "signature": 1}}',
    b'{"apiVersion": "0.0.1", "kind": "intoto", "spec": {"signatures": [{"verifier": "@@"}]}}',
])
def test_hostile_entries_are_no_match(entry: bytes) -> None:
    from keyless.formats.trustroot import TrustedRoot
    from keyless.monitor.watch import Watch
    from keyless.trust.material import TrustMaterial

    watch = Watch(TrustMaterial(TrustedRoot((), (), ())), patterns=[".*"],
                  fingerprints=["sha256:" + "0" * 64])
    assert watch.matches(entry) == []
    assert watch.matches(entry, prefilter=False) == []
