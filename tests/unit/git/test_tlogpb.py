"""The TransparencyLogEntry protobuf codec: round trip and hostile input."""

from __future__ import annotations

import pytest

from keyless.errors import InvalidInput
from keyless.formats.bundle import InclusionProof, TransparencyLogEntry
from keyless.git.tlogpb import MAX_ENTRY, decode_entry, encode_entry

ENTRY = TransparencyLogEntry(
    log_index=1234567890123,
    log_id=b"\x01" * 32,
    kind="hashedrekord",
    version="0.0.1",
    integrated_time=1796249967,
    canonicalized_body=b'{"kind":"hashedrekord"}',
    inclusion_promise=b"\x30\x45set",
    inclusion_proof=InclusionProof(
        log_index=1234567890123, root_hash=b"\x02" * 32, tree_size=1234567890124,
        hashes=(b"\x03" * 32, b"", b"\x04" * 32), checkpoint="origin\n5\nroot=\n\n— sig\n"),
)


def test_round_trip() -> None:
    assert decode_entry(encode_entry(ENTRY)) == ENTRY


def test_known_bytes() -> None:
    """Field numbers of sigstore_rekor.proto, checked on a small entry by hand."""
    small = TransparencyLogEntry(7, b"\xaa", "k", "v", 0, b"")
    assert encode_entry(small) == bytes.fromhex("0807" "1203" "0a01aa" "1a06" "0a016b" "120176")


def test_unknown_fields_are_skipped() -> None:
    extra = bytes.fromhex("f80101") + bytes.fromhex("fa010161") + bytes.fromhex("fd0101020304")
    assert decode_entry(encode_entry(ENTRY) + extra) == ENTRY


@pytest.mark.parametrize("data", [
    bytes.fromhex("08"),                     # truncated varint
    bytes.fromhex("08" + "ff" * 10 + "01"),  # longer than 10 bytes
    bytes.fromhex("08" + "ff" * 9 + "7f"),   # more than 64 bits
    bytes.fromhex("08" + "ff" * 9 + "01"),   # negative int64
    bytes.fromhex("0a0100"),                 # log_index as bytes
    bytes.fromhex("1005"),                   # log_id as varint
    bytes.fromhex("3a05ab"),                 # body longer than the input
    bytes.fromhex("0b"),                     # wire type 3 (groups)
    bytes.fromhex("0001"),                   # field number 0
    bytes.fromhex("1a00"),                   # no kind and version
    bytes.fromhex("1a04") + b"\x0a\x02\xff\xfe",  # kind not UTF-8
])
def test_hostile_input(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        decode_entry(data)


def test_oversized_input() -> None:
    with pytest.raises(InvalidInput, match="larger"):
        decode_entry(b"\x00" * (MAX_ENTRY + 1))
