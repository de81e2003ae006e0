"""Reading a CT log's C2SP static-ct-api tiles: checkpoint, hash tiles, data tiles of TileLeafs.

A data tile (``tile/data/<N>[.p/<W>]``) is the concatenation of ``TileLeaf`` structures without
length prefixes: ``TimestampedEntry | [ASN.1Cert pre_certificate] | Fingerprint chain<0..2^16-1>``
(static-ct-api "Log entries"). The tree's leaf is the ``MerkleTreeLeaf`` ``00 00 ||
TimestampedEntry`` (RFC 6962 §3.4); what the monitor matches is the certificate (x509 entries) or
the precertificate. Every length is checked; a malformed tile is a :class:`BundleError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from keyless.formats.sct import ENTRY_TYPE_PRECERT, ENTRY_TYPE_X509
from keyless.formats.tiles import TILE_WIDTH, encode_index, tile_width
from keyless.monitor.tiles import BundleError, TileClient

__all__ = ["CTLeaf", "StaticCTClient", "parse_data_tile"]

#: A data tile holds 256 TileLeafs of at most a few certificates each.
_MAX_DATA_TILE = 256 * 3 * (1 << 16)


@dataclass(frozen=True)
class CTLeaf:
    """One CT log entry: its MerkleTreeLeaf and the certificate to match (pre- or final)."""

    merkle_leaf: bytes
    certificate: bytes


def _take(data: bytes, pos: int, n: int, what: str) -> tuple[bytes, int]:
    if n < 0 or pos + n > len(data):
        raise BundleError(f"data tile truncated in {what}")
    return data[pos : pos + n], pos + n


def _length(data: bytes, pos: int, size: int, what: str) -> tuple[int, int]:
    raw, pos = _take(data, pos, size, what)
    return int.from_bytes(raw, "big"), pos


def parse_data_tile(data: bytes, width: int) -> list[CTLeaf]:
    """The ``width`` TileLeafs of a data tile, exactly (trailing bytes are an error)."""
    leaves: list[CTLeaf] = []
    pos = 0
    while pos < len(data):
        start = pos
        _head, pos = _take(data, pos, 8, "the timestamp")
        entry_type, pos = _length(data, pos, 2, "the entry type")
        if entry_type == ENTRY_TYPE_PRECERT:
            _issuer, pos = _take(data, pos, 32, "the issuer key hash")
        elif entry_type != ENTRY_TYPE_X509:
            raise BundleError(f"data tile entry {len(leaves)} has unknown type {entry_type}")
        n, pos = _length(data, pos, 3, "a certificate length")
        certificate, pos = _take(data, pos, n, "a certificate")
        m, pos = _length(data, pos, 2, "the extensions length")
        _ext, pos = _take(data, pos, m, "the extensions")
        merkle_leaf = b"\x00\x00" + data[start:pos]
        if entry_type == ENTRY_TYPE_PRECERT:
            n, pos = _length(data, pos, 3, "the precertificate length")
            certificate, pos = _take(data, pos, n, "the precertificate")
        m, pos = _length(data, pos, 2, "the chain length")
        if m % 32:
            raise BundleError(f"data tile entry {len(leaves)} has a malformed issuer chain")
        _chain, pos = _take(data, pos, m, "the chain")
        leaves.append(CTLeaf(merkle_leaf, certificate))
        if len(leaves) > TILE_WIDTH:
            raise BundleError(f"data tile holds more than {TILE_WIDTH} entries")
    if len(leaves) != width:
        raise BundleError(f"data tile holds {len(leaves)} entries, expected {width}")
    return leaves


class StaticCTClient(TileClient):
    """A static-ct-api log under ``base_url``: its entries are :class:`CTLeaf` objects."""

    def data_tile(self, index: int, size: int) -> list[CTLeaf]:
        width = tile_width(0, index, size)
        suffix = "" if width == TILE_WIDTH else f".p/{width}"
        data = self.get(f"tile/data/{encode_index(index)}{suffix}", _MAX_DATA_TILE)
        try:
            return parse_data_tile(data, width)
        except BundleError as exc:
            raise BundleError(f"data tile {index}: {exc}") from exc
