"""The CT log's own wire structures (RFC 6962 §3.1, §3.4, §3.5; C2SP static-ct-api TileLeaf).

* ``MerkleTreeLeaf`` (what is hashed into the tree): ``u8 version(0) | u8 leaf_type(0) |
  TimestampedEntry``; ``TimestampedEntry``: ``u64 timestamp | u16 entry_type | signed_entry |
  CtExtensions<0..2^16-1>``.
* ``extra_data`` of ``get-entries`` (RFC 6962 §4.6): for x509 entries ``ASN.1Cert
  certificate_chain<0..2^24-1>``; for precerts ``PrecertChainEntry { ASN.1Cert pre_certificate;
  ASN.1Cert precertificate_chain<0..2^24-1> }``.
* ``TileLeaf`` (static-ct-api "Log entries"): ``TimestampedEntry | [ASN.1Cert pre_certificate] |
  Fingerprint certificate_chain<0..2^16-1>`` — issuers are stored once, by SHA-256.
* ``TreeHeadSignature`` input (RFC 6962 §3.5): ``u8 version | u8 signature_type(1) |
  u64 timestamp | u64 tree_size | opaque sha256_root_hash[32]``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from keyless.errors import InvalidInput
from keyless.formats.sct import ENTRY_TYPE_PRECERT, ENTRY_TYPE_X509

SIGNATURE_TYPE_TREE_HASH = 1


def _u24(data: bytes) -> bytes:
    if len(data) > 0xFFFFFF:
        raise InvalidInput(f"certificate of {len(data)} bytes exceeds the u24 limit")
    return len(data).to_bytes(3, "big") + data


def _u16(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise InvalidInput(f"field of {len(data)} bytes exceeds the u16 limit")
    return struct.pack(">H", len(data)) + data


@dataclass(frozen=True)
class TimestampedEntry:
    """RFC 6962 §3.4 ``TimestampedEntry``; ``issuer_key_hash`` is set for precert entries only.

    ``certificate`` holds the DER certificate (x509_entry) or the TBSCertificate with the poison
    removed (precert_entry).
    """

    timestamp_ms: int
    entry_type: int
    certificate: bytes
    issuer_key_hash: bytes = b""
    extensions: bytes = b""

    def encode(self) -> bytes:
        head = struct.pack(">QH", self.timestamp_ms, self.entry_type)
        if self.entry_type == ENTRY_TYPE_PRECERT:
            body = self.issuer_key_hash + _u24(self.certificate)
        else:
            body = _u24(self.certificate)
        return head + body + _u16(self.extensions)

    def merkle_tree_leaf(self) -> bytes:
        """``MerkleTreeLeaf`` v1 of type ``timestamped_entry`` (RFC 6962 §3.4)."""
        return b"\x00\x00" + self.encode()

    @classmethod
    def decode(cls, data: bytes) -> tuple[TimestampedEntry, int]:
        """Parse a TimestampedEntry at the start of ``data``; returns it and its length."""
        try:
            timestamp, entry_type = struct.unpack_from(">QH", data, 0)
            pos = 10
            ikh = b""
            if entry_type == ENTRY_TYPE_PRECERT:
                ikh = data[pos : pos + 32]
                pos += 32
            elif entry_type != ENTRY_TYPE_X509:
                raise InvalidInput(f"unknown CT entry type {entry_type}")
            n = int.from_bytes(data[pos : pos + 3], "big")
            cert = data[pos + 3 : pos + 3 + n]
            pos += 3 + n
            (m,) = struct.unpack_from(">H", data, pos)
            ext = data[pos + 2 : pos + 2 + m]
            pos += 2 + m
        except struct.error as exc:
            raise InvalidInput("truncated TimestampedEntry") from exc
        if len(cert) != n or len(ext) != m or (entry_type == ENTRY_TYPE_PRECERT and len(ikh) != 32):
            raise InvalidInput("truncated TimestampedEntry")
        return cls(timestamp, entry_type, cert, ikh, ext), pos

    @classmethod
    def from_merkle_tree_leaf(cls, leaf: bytes) -> TimestampedEntry:
        if leaf[:2] != b"\x00\x00":
            raise InvalidInput("not a v1 timestamped_entry MerkleTreeLeaf")
        entry, used = cls.decode(leaf[2:])
        if used != len(leaf) - 2:
            raise InvalidInput("MerkleTreeLeaf has trailing bytes")
        return entry


def fingerprint(der: bytes) -> bytes:
    """The static-ct-api issuer fingerprint: SHA-256 of the certificate DER."""
    return hashlib.sha256(der).digest()


def tile_leaf(
    entry: TimestampedEntry, precertificate: bytes | None, chain: Sequence[bytes]
) -> bytes:
    """The static-ct-api ``TileLeaf`` of an entry (issuers by fingerprint)."""
    out = entry.encode()
    if entry.entry_type == ENTRY_TYPE_PRECERT:
        if precertificate is None:
            raise InvalidInput("a precert entry needs its precertificate")
        out += _u24(precertificate)
    return out + _u16(b"".join(fingerprint(c) for c in chain))


@dataclass(frozen=True)
class ParsedTileLeaf:
    entry: TimestampedEntry
    precertificate: bytes | None
    chain_fingerprints: tuple[bytes, ...]


def parse_tile_leaf(data: bytes) -> ParsedTileLeaf:
    """Inverse of :func:`tile_leaf`."""
    entry, pos = TimestampedEntry.decode(data)
    pre: bytes | None = None
    if entry.entry_type == ENTRY_TYPE_PRECERT:
        n = int.from_bytes(data[pos : pos + 3], "big")
        pre = data[pos + 3 : pos + 3 + n]
        pos += 3 + n
    m = int.from_bytes(data[pos : pos + 2], "big")
    fps = data[pos + 2 : pos + 2 + m]
    if pos + 2 + m != len(data) or m % 32:
        raise InvalidInput("malformed TileLeaf")
    return ParsedTileLeaf(entry, pre, tuple(fps[i : i + 32] for i in range(0, m, 32)))


def extra_data(leaf: ParsedTileLeaf, chain: Sequence[bytes]) -> bytes:
    """``get-entries`` ``extra_data`` (RFC 6962 §4.6) from a TileLeaf and its issuer DERs."""
    certs = _u24(b"".join(_u24(c) for c in chain))
    if leaf.entry.entry_type == ENTRY_TYPE_PRECERT:
        assert leaf.precertificate is not None
        return _u24(leaf.precertificate) + certs
    return certs


def tree_head_signed_data(timestamp_ms: int, tree_size: int, root_hash: bytes) -> bytes:
    """The bytes an STH signature covers (RFC 6962 §3.5 ``TreeHeadSignature``)."""
    return struct.pack(">BBQQ", 0, SIGNATURE_TYPE_TREE_HASH, timestamp_ms, tree_size) + root_hash
