"""The transparency log entry as protobuf bytes, the way gitsign embeds it in a CMS signature.

gitsign stores a ``dev.sigstore.rekor.v1.TransparencyLogEntry`` (sigstore protobuf-specs
``sigstore_rekor.proto``) as the value of the unsigned attribute 1.3.6.1.4.1.57264.3.1. Only
that one message (and its small sub-messages) is needed, so this is a minimal wire-format codec
rather than a protobuf dependency:

========================  =====  ==========================================
TransparencyLogEntry      field  type
========================  =====  ==========================================
log_index                 1      int64
log_id                    2      LogId {key_id = 1 bytes}
kind_version              3      KindVersion {kind = 1, version = 2 strings}
integrated_time           4      int64
inclusion_promise         5      InclusionPromise {signed_entry_timestamp = 1 bytes}
inclusion_proof           6      InclusionProof {log_index = 1, root_hash = 2, tree_size = 3,
                                 hashes = 4 (repeated bytes), checkpoint = 5 {envelope = 1}}
canonicalized_body        7      bytes
========================  =====  ==========================================

Unlike gitsign, keyless keeps ``canonicalized_body`` (gitsign clears it and rebuilds the body
from the CMS). The decoder is strict where it matters: the input is hostile (it comes from a git
object), so truncation, overlong varints, negative integers, wrong wire types for known fields
and oversized input are :class:`~keyless.errors.InvalidInput`; unknown fields are skipped as the
protobuf rules require.
"""

from __future__ import annotations

from collections.abc import Iterator

from keyless.errors import InvalidInput
from keyless.formats.bundle import InclusionProof, TransparencyLogEntry

__all__ = ["MAX_ENTRY", "decode_entry", "encode_entry"]

#: a log entry with proof and checkpoint is a few kB; refuse anything absurd before parsing
MAX_ENTRY = 1 << 20
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_INT64_MAX = (1 << 63) - 1


# --- encoding -------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int_field(number: int, value: int) -> bytes:
    if not 0 <= value <= _INT64_MAX:
        raise InvalidInput(f"protobuf field {number}: {value} is not a non-negative int64")
    return _varint(number << 3 | _VARINT) + _varint(value) if value else b""


def _bytes_field(number: int, value: bytes, *, keep_empty: bool = False) -> bytes:
    if not value and not keep_empty:
        return b""
    return _varint(number << 3 | _LEN) + _varint(len(value)) + value


def encode_entry(entry: TransparencyLogEntry) -> bytes:
    """The entry as ``TransparencyLogEntry`` protobuf bytes (proto3: zero values omitted)."""
    kind_version = _bytes_field(1, entry.kind.encode()) + _bytes_field(2, entry.version.encode())
    out = [
        _int_field(1, entry.log_index),
        _bytes_field(2, _bytes_field(1, entry.log_id), keep_empty=True),
        _bytes_field(3, kind_version, keep_empty=True),
        _int_field(4, entry.integrated_time),
    ]
    if entry.inclusion_promise is not None:
        out.append(_bytes_field(5, _bytes_field(1, entry.inclusion_promise), keep_empty=True))
    if (p := entry.inclusion_proof) is not None:
        proof = [
            _int_field(1, p.log_index),
            _bytes_field(2, p.root_hash),
            _int_field(3, p.tree_size),
            *(_bytes_field(4, h, keep_empty=True) for h in p.hashes),
        ]
        if p.checkpoint is not None:
            proof.append(_bytes_field(5, _bytes_field(1, p.checkpoint.encode()), keep_empty=True))
        out.append(_bytes_field(6, b"".join(proof), keep_empty=True))
    out.append(_bytes_field(7, entry.canonicalized_body))
    return b"".join(out)


# --- decoding -------------------------------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            raise InvalidInput("truncated protobuf varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >= 1 << 64:
                raise InvalidInput("protobuf varint longer than 64 bits")
            return value, pos
    raise InvalidInput("protobuf varint longer than 10 bytes")


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value): an int for varints, bytes otherwise."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise InvalidInput("protobuf field number 0")
        if wire == _VARINT:
            value, pos = _read_varint(data, pos)
            yield number, wire, value
        elif wire == _LEN:
            length, pos = _read_varint(data, pos)
            if length > len(data) - pos:
                raise InvalidInput("truncated protobuf length-delimited field")
            yield number, wire, data[pos : pos + length]
            pos += length
        elif wire in (_I64, _I32):
            size = 8 if wire == _I64 else 4
            if size > len(data) - pos:
                raise InvalidInput("truncated protobuf fixed-size field")
            yield number, wire, data[pos : pos + size]
            pos += size
        else:
            raise InvalidInput(f"unsupported protobuf wire type {wire}")


class _Message:
    """The known fields of one message: last value wins (proto3), repeated ones collected."""

    def __init__(self, data: bytes, what: str, *, ints: set[int], blobs: set[int]) -> None:
        self.what = what
        self.ints: dict[int, int] = {}
        self.blobs: dict[int, list[bytes]] = {}
        for number, wire, value in _fields(data):
            if number in ints:
                if wire != _VARINT or not isinstance(value, int):
                    raise InvalidInput(f"{what} field {number} is not a varint")
                if value > _INT64_MAX:
                    raise InvalidInput(f"{what} field {number} is negative")
                self.ints[number] = value
            elif number in blobs:
                if wire != _LEN or not isinstance(value, bytes):
                    raise InvalidInput(f"{what} field {number} is not length-delimited")
                self.blobs.setdefault(number, []).append(value)

    def integer(self, number: int) -> int:
        return self.ints.get(number, 0)

    def blob(self, number: int) -> bytes | None:
        values = self.blobs.get(number)
        return values[-1] if values else None

    def text(self, number: int) -> str:
        try:
            return (self.blob(number) or b"").decode()
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{self.what} field {number} is not UTF-8") from exc


def decode_entry(data: bytes) -> TransparencyLogEntry:
    """Parse ``TransparencyLogEntry`` protobuf bytes (hostile input)."""
    if len(data) > MAX_ENTRY:
        raise InvalidInput(f"the embedded log entry is larger than {MAX_ENTRY >> 10} KiB")
    top = _Message(data, "TransparencyLogEntry", ints={1, 4}, blobs={2, 3, 5, 6, 7})
    log_id = _Message(top.blob(2) or b"", "LogId", ints=set(), blobs={1})
    kv = _Message(top.blob(3) or b"", "KindVersion", ints=set(), blobs={1, 2})
    promise: bytes | None = None
    if (raw := top.blob(5)) is not None:
        promise = _Message(raw, "InclusionPromise", ints=set(), blobs={1}).blob(1) or b""
    proof: InclusionProof | None = None
    if (raw := top.blob(6)) is not None:
        p = _Message(raw, "InclusionProof", ints={1, 3}, blobs={2, 4, 5})
        checkpoint: str | None = None
        if (cp := p.blob(5)) is not None:
            checkpoint = _Message(cp, "Checkpoint", ints=set(), blobs={1}).text(1)
        proof = InclusionProof(
            log_index=p.integer(1),
            root_hash=p.blob(2) or b"",
            tree_size=p.integer(3),
            hashes=tuple(p.blobs.get(4, ())),
            checkpoint=checkpoint,
        )
    kind, version = kv.text(1), kv.text(2)
    if not kind or not version:
        raise InvalidInput("the embedded log entry has no kind and version")
    return TransparencyLogEntry(
        log_index=top.integer(1),
        log_id=log_id.blob(1) or b"",
        kind=kind,
        version=version,
        integrated_time=top.integer(4),
        canonicalized_body=top.blob(7) or b"",
        inclusion_promise=promise,
        inclusion_proof=proof,
    )
