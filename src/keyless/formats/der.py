"""A strict DER reader (ITU-T X.690 §8.1, §10.1): just enough to walk CMS and RFC 3161 messages.

Elements are handled as ``(tag, start, stop)`` triples of offsets into the caller's buffer, so a
walk copies nothing until a field is actually used. Only what DER allows is accepted: one-octet
tags (every CMS and TSP tag is below 31), definite lengths in their minimal form, and contents
that end exactly where their parent ends. Anything else raises :class:`DERError` naming the
problem. The hot paths (RFC 3161 token verification, the TSA's query fast path) use this instead
of a generic ASN.1 library because a full object model costs several times more per message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

#: Universal tags used by the callers (X.690 §8.1.2, X.680 §8.4).
INTEGER: Final = 0x02
BIT_STRING: Final = 0x03
OCTET_STRING: Final = 0x04
OID: Final = 0x06
GENERALIZED_TIME: Final = 0x18
SEQUENCE: Final = 0x30
SET: Final = 0x31

#: Longest length field accepted (4 octets: 4 GiB, far beyond any bounded input).
_MAX_LENGTH_OCTETS: Final = 4


class DERError(ValueError):
    """The input is not the DER encoding expected; the message says where and why."""


def element(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """``(tag, content start, content stop)`` of the element at ``pos`` (X.690 §8.1.1-8.1.3)."""
    if pos + 2 > end:
        raise DERError("truncated element")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DERError("multi-octet tags are not supported")
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0:
            raise DERError("indefinite lengths are not DER")
        if n > _MAX_LENGTH_OCTETS or pos + n > end:
            raise DERError("length field too long")
        if data[pos] == 0:
            raise DERError("non-minimal length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
        if length < 0x80:
            raise DERError("non-minimal length")
    if pos + length > end:
        raise DERError("element runs past its container")
    return tag, pos, pos + length


def expect(data: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    """The content span of the element at ``pos``, which must carry ``tag``."""
    got, start, stop = element(data, pos, end)
    if got != tag:
        raise DERError(f"{what}: expected tag 0x{tag:02x}, found 0x{got:02x}")
    return start, stop


def children(data: bytes, start: int, stop: int) -> list[tuple[int, int, int]]:
    """Every element inside a constructed value's content span, in order."""
    out: list[tuple[int, int, int]] = []
    pos = start
    while pos < stop:
        tag, s, e = element(data, pos, stop)
        out.append((tag, s, e))
        pos = e
    return out


def set_members(data: bytes, start: int, stop: int, what: str) -> list[tuple[int, int, int, int]]:
    """``(tag, element start, content start, content stop)`` of every member of a ``SET OF``,
    which DER requires in ascending order of their encodings (X.690 §11.6)."""
    out: list[tuple[int, int, int, int]] = []
    pos = start
    previous = b""
    while pos < stop:
        tag, s, e = element(data, pos, stop)
        encoding = data[pos:e]
        if out:
            width = max(len(previous), len(encoding))
            if previous.ljust(width, b"\0") > encoding.ljust(width, b"\0"):
                raise DERError(f"{what}: SET OF members are not in DER order")
        out.append((tag, pos, s, e))
        previous = encoding
        pos = e
    return out


def integer(data: bytes, start: int, stop: int, what: str) -> int:
    """A DER INTEGER's value (X.690 §8.3: two's complement, minimal octets)."""
    if start == stop:
        raise DERError(f"{what}: empty INTEGER")
    if stop - start > 1 and (
        (data[start] == 0 and not data[start + 1] & 0x80)
        or (data[start] == 0xFF and data[start + 1] & 0x80)
    ):
        raise DERError(f"{what}: non-minimal INTEGER")
    return int.from_bytes(data[start:stop], "big", signed=True)


def encode_length(n: int) -> bytes:
    """The DER length octets for ``n`` content bytes (X.690 §8.1.3.4/§8.1.3.5, minimal form)."""
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def encode_tlv(tag: int, content: bytes) -> bytes:
    """One DER tag-length-value with a single-octet tag."""
    return bytes((tag,)) + encode_length(len(content)) + content


def set_order(encodings: Sequence[bytes]) -> list[bytes]:
    """The members of a DER ``SET OF`` in their required order (X.690 §11.6: ascending, the
    shorter encodings padded with zero octets at their end)."""
    width = max((len(e) for e in encodings), default=0)
    return sorted(encodings, key=lambda e: e.ljust(width, b"\0"))


def encode_oid(dotted: str) -> bytes:
    """The content octets of an OBJECT IDENTIFIER (X.690 §8.19), for constant comparisons."""
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40):
        raise ValueError(f"invalid object identifier {dotted!r}")
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def generalized_time(data: bytes, start: int, stop: int, what: str) -> datetime:
    """A GeneralizedTime in UTC, ``YYYYMMDDHHMMSS[.f…]Z`` (X.690 §11.7, RFC 3161 §2.4.2)."""
    text = data[start:stop]
    if len(text) < 15 or text[-1:] != b"Z" or not text[:14].isdigit():
        raise DERError(f"{what}: not a UTC GeneralizedTime")
    micros = 0
    fraction = text[14:-1]
    if fraction:
        digits = fraction[1:]
        if fraction[:1] != b"." or not digits or not digits.isdigit() or digits.endswith(b"0"):
            raise DERError(f"{what}: malformed fractional seconds")
        micros = int((digits + b"000000")[:6])
    try:
        return datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[8:10]),
            int(text[10:12]),
            int(text[12:14]),
            micros,
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise DERError(f"{what}: invalid date or time") from exc
