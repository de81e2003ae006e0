"""An independent static-ct-api / RFC 6962 reader for the CT log tests.

Written from c2sp.org/static-ct-api ("SCT Extension", "Checkpoints", "Log entries") and RFC 6962
§2.1, §3.2-§3.5 alone: it shares no parsing code with keyless (neither
``keyless.services.ctlog.entries`` nor ``keyless.formats.sct``), so that a mistake made the same
way by our writer and our reader still shows up here.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(leaf_hashes: list[bytes]) -> bytes:
    """RFC 6962 §2.1 Merkle Tree Hash over already-hashed leaves."""
    if not leaf_hashes:
        return sha256(b"")
    if len(leaf_hashes) == 1:
        return leaf_hashes[0]
    k = 1
    while k * 2 < len(leaf_hashes):
        k *= 2
    return sha256(b"\x01" + mth(leaf_hashes[:k]) + mth(leaf_hashes[k:]))


def leaf_index(extensions: bytes) -> int:
    """The ``leaf_index`` of a CtExtensions field; fails on anything static-ct-api forbids."""
    pos, seen = 0, {}
    while pos < len(extensions):
        kind = extensions[pos]
        (n,) = struct.unpack(">H", extensions[pos + 1 : pos + 3])
        assert kind not in seen, "duplicate extension type"
        seen[kind] = extensions[pos + 3 : pos + 3 + n]
        assert len(seen[kind]) == n, "truncated extension"
        pos += 3 + n
    assert 0 in seen, f"no leaf_index extension in {extensions.hex()}"
    assert len(seen[0]) == 5, "LeafIndex is a uint40"
    if len(seen) == 1:
        assert len(extensions) == 8  # "an extensions field with only leaf_index is 8 bytes"
    return int.from_bytes(seen[0], "big")


@dataclass(frozen=True)
class TileEntry:
    """One static-ct-api ``TileLeaf`` of a data tile."""

    timestamped_entry: bytes  # the RFC 6962 §3.4 TimestampedEntry, raw
    timestamp_ms: int
    entry_type: int
    issuer_key_hash: bytes
    certificate: bytes  # x509: the certificate; precert: the TBSCertificate
    extensions: bytes
    pre_certificate: bytes | None
    fingerprints: tuple[bytes, ...]

    @property
    def merkle_tree_leaf(self) -> bytes:
        return b"\x00\x00" + self.timestamped_entry


def parse_data_tile(data: bytes) -> list[TileEntry]:
    out, pos = [], 0
    while pos < len(data):
        start = pos
        timestamp, entry_type = struct.unpack(">QH", data[pos : pos + 10])
        pos += 10
        ikh = b""
        if entry_type == 1:
            ikh, pos = data[pos : pos + 32], pos + 32
        else:
            assert entry_type == 0
        n = int.from_bytes(data[pos : pos + 3], "big")
        cert, pos = data[pos + 3 : pos + 3 + n], pos + 3 + n
        (m,) = struct.unpack(">H", data[pos : pos + 2])
        ext, pos = data[pos + 2 : pos + 2 + m], pos + 2 + m
        te = data[start:pos]
        pre = None
        if entry_type == 1:
            n = int.from_bytes(data[pos : pos + 3], "big")
            pre, pos = data[pos + 3 : pos + 3 + n], pos + 3 + n
        (m,) = struct.unpack(">H", data[pos : pos + 2])
        chain, pos = data[pos + 2 : pos + 2 + m], pos + 2 + m
        assert m % 32 == 0 and pos <= len(data), "malformed TileLeaf"
        fps = tuple(chain[i : i + 32] for i in range(0, m, 32))
        out.append(TileEntry(te, timestamp, entry_type, ikh, cert, ext, pre, fps))
    return out


def verify_checkpoint(text: bytes, origin: str, log_id: bytes, key: Any) -> tuple[int, bytes]:
    """Check a static-ct checkpoint's RFC6962NoteSignature; return (size, root hash)."""
    body, _, sigs = text.partition(b"\n\n")
    lines = body.decode().split("\n")
    assert lines[0] == origin and len(lines) == 3, "no extension lines allowed"
    size, root = int(lines[1]), base64.b64decode(lines[2])
    key_id = sha256(origin.encode() + b"\n\x05" + log_id)[:4]
    for line in sigs.decode().splitlines():
        _dash, name, b64 = line.split(" ")
        raw = base64.b64decode(b64)
        if name != origin or raw[:4] != key_id:
            continue
        timestamp = int.from_bytes(raw[4:12], "big")
        hash_alg, sig_alg, n = raw[12], raw[13], int.from_bytes(raw[14:16], "big")
        assert (hash_alg, sig_alg) == (4, 3) and len(raw) == 16 + n
        signed = struct.pack(">BBQQ", 0, 1, timestamp, size) + root
        key.verify(raw[16:], signed, ec.ECDSA(hashes.SHA256()))
        return size, root
    raise AssertionError("no RFC6962NoteSignature of the log on the checkpoint")


@dataclass(frozen=True)
class RawSCT:
    log_id: bytes
    timestamp_ms: int
    extensions: bytes
    signature: bytes  # the DigitallySigned struct


def parse_sct(raw: bytes) -> RawSCT:
    assert raw[0] == 0, "SCT v1"
    log_id, timestamp = raw[1:33], int.from_bytes(raw[33:41], "big")
    (n,) = struct.unpack(">H", raw[41:43])
    return RawSCT(log_id, timestamp, raw[43 : 43 + n], raw[43 + n :])


def embedded_scts(cert: x509.Certificate) -> list[RawSCT]:
    """The SCTs of a final certificate, parsed from the raw extension (RFC 6962 §3.3)."""
    value = cert.extensions.get_extension_for_oid(SCT_LIST_OID).value.public_bytes()
    assert value[0] == 0x04
    header = 2 if value[1] < 0x80 else 2 + (value[1] & 0x7F)
    tls = value[header:]
    (total,) = struct.unpack(">H", tls[:2])
    assert total == len(tls) - 2
    out, pos = [], 2
    while pos < len(tls):
        (n,) = struct.unpack(">H", tls[pos : pos + 2])
        out.append(parse_sct(tls[pos + 2 : pos + 2 + n]))
        pos += 2 + n
    return out


def spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def precert_leaf(cert: x509.Certificate, issuer: x509.Certificate, sct: RawSCT) -> bytes:
    """The MerkleTreeLeaf an RFC 6962 client rebuilds from a final certificate and its SCT."""
    tbs = cert.tbs_precertificate_bytes
    return (
        b"\x00\x00"
        + struct.pack(">QH", sct.timestamp_ms, 1)
        + sha256(spki(issuer))
        + len(tbs).to_bytes(3, "big")
        + tbs
        + struct.pack(">H", len(sct.extensions))
        + sct.extensions
    )


def x509_leaf(cert_der: bytes, sct: RawSCT) -> bytes:
    """The MerkleTreeLeaf of an ``add-chain`` entry rebuilt from the certificate and its SCT."""
    return (
        b"\x00\x00"
        + struct.pack(">QH", sct.timestamp_ms, 0)
        + len(cert_der).to_bytes(3, "big")
        + cert_der
        + struct.pack(">H", len(sct.extensions))
        + sct.extensions
    )


def verify_sct_signature(sct: RawSCT, leaf: bytes, key: Any) -> None:
    """RFC 6962 §3.2: the SCT signs version, type 0, and the leaf's TimestampedEntry fields."""
    signed = b"\x00\x00" + leaf[2:]  # sct_version v1, signature_type certificate_timestamp
    ds = sct.signature
    assert ds[:2] == bytes([4, 3])
    key.verify(ds[4:], signed, ec.ECDSA(hashes.SHA256()))
