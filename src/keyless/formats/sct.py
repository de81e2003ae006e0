"""Signed certificate timestamps (RFC 6962 §3.2, §3.3): encoding, signed data, verification.

A CT log answers ``add-pre-chain`` with an SCT, the CA embeds it in the final certificate in
extension 1.3.6.1.4.1.11129.2.4.2, and every verifier recomputes the structure the log signed
(protocols.md §2). Pure: no I/O, only ``cryptography`` for the signature check.

Wire shapes (TLS presentation language, big-endian):

* ``SignedCertificateTimestamp``: ``u8 version | opaque log_id[32] | u64 timestamp |
  opaque extensions<0..2^16-1> | digitally-signed`` where digitally-signed is
  ``u8 hash_alg | u8 sig_alg | opaque signature<0..2^16-1>`` (RFC 5246 §4.7).
* ``SignedCertificateTimestampList``: ``u16 total | { u16 len | SCT }*`` (RFC 6962 §3.3), carried
  inside a DER OCTET STRING as the extension value.
* The signed data (RFC 6962 §3.2): ``u8 version | u8 signature_type(0) | u64 timestamp |
  u16 entry_type | signed_entry | u16 ext_len | ext`` with signed_entry ``u24 len | cert DER``
  (x509_entry) or ``opaque issuer_key_hash[32] | u24 len | TBSCertificate`` (precert_entry).
* ``CtExtensions`` (opaque in RFC 6962; given a shape by C2SP static-ct-api "SCT Extension"):
  ``{ u8 extension_type | opaque extension_data<0..2^16-1> }*``, each type at most once. A
  static-ct log's SCTs (and the ``TimestampedEntry`` it logs) carry ``leaf_index(0)``: the entry's
  0-based index as a big-endian 40-bit integer, 8 bytes in all.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from keyless.errors import VerificationError
from keyless.keys import hash_for_curve, spki_der

#: OID of the embedded SCT list extension (RFC 6962 §3.3).
SCT_LIST_OID = "1.3.6.1.4.1.11129.2.4.2"
#: OID of the precertificate poison extension (RFC 6962 §3.1).
POISON_OID = "1.3.6.1.4.1.11129.2.4.3"

#: RFC 6962 §3.2 ``Version``: only v1 (0) exists.
SCT_VERSION_V1 = 0
#: RFC 6962 §3.2 ``SignatureType.certificate_timestamp``.
SIGNATURE_TYPE_CERTIFICATE_TIMESTAMP = 0
#: RFC 6962 §3.1 ``LogEntryType``.
ENTRY_TYPE_X509 = 0
ENTRY_TYPE_PRECERT = 1

#: RFC 5246 §7.4.1.4.1 ``HashAlgorithm`` values.
HASH_SHA256 = 4
HASH_SHA384 = 5
HASH_SHA512 = 6
#: RFC 5246 §7.4.1.4.1 / RFC 8422 §5.1.3 ``SignatureAlgorithm`` values.
SIG_RSA = 1
SIG_ECDSA = 3
SIG_ED25519 = 7

_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    HASH_SHA256: hashes.SHA256,
    HASH_SHA384: hashes.SHA384,
    HASH_SHA512: hashes.SHA512,
}
#: ``cryptography`` hash name → RFC 5246 code (the inverse of ``_HASHES``).
_HASH_CODES: dict[str, int] = {"sha256": HASH_SHA256, "sha384": HASH_SHA384, "sha512": HASH_SHA512}

#: C2SP static-ct-api ``ExtensionType.leaf_index``.
EXTENSION_LEAF_INDEX = 0
#: ``LeafIndex`` is a ``uint40``.
MAX_LEAF_INDEX = 2**40 - 1

_MAX_U16 = 0xFFFF
_MAX_U24 = 0xFFFFFF


class SCTError(VerificationError):
    """An SCT is malformed or does not verify (base class of the SCT failures)."""


class SCTDecodeError(SCTError):
    """The bytes are not a well-formed SCT or SCT list (RFC 6962 §3.3)."""


class SCTSignatureError(SCTError):
    """The SCT's signature does not verify over the recomputed signed data (RFC 6962 §3.2)."""


@dataclass(frozen=True)
class SignedCertificateTimestamp:
    """One SCT as defined by RFC 6962 §3.2; ``signature`` is DER (ECDSA) or raw (Ed25519)."""

    version: int
    log_id: bytes
    timestamp_ms: int
    extensions: bytes
    hash_alg: int
    sig_alg: int
    signature: bytes

    def digitally_signed(self) -> bytes:
        """The TLS ``DigitallySigned`` struct (RFC 5246 §4.7), as in ``AddChainResponse``."""
        return bytes([self.hash_alg, self.sig_alg]) + _vec16(self.signature, "signature")

    def to_add_chain_response(self) -> dict[str, Any]:
        """The RFC 6962 §4.1 ``add-chain``/``add-pre-chain`` JSON answer for this SCT."""
        return {
            "sct_version": self.version,
            "id": base64.b64encode(self.log_id).decode(),
            "timestamp": self.timestamp_ms,
            "extensions": base64.b64encode(self.extensions).decode(),
            "signature": base64.b64encode(self.digitally_signed()).decode(),
        }

    @classmethod
    def from_add_chain_response(cls, body: Mapping[str, Any]) -> SignedCertificateTimestamp:
        """Parse an RFC 6962 §4.1 ``AddChainResponse`` JSON object (as Fulcio's detached SCT)."""
        try:
            version = int(body["sct_version"])
            log_id = base64.b64decode(str(body["id"]), validate=True)
            timestamp = int(body["timestamp"])
            extensions = base64.b64decode(str(body.get("extensions", "")), validate=True)
            ds = base64.b64decode(str(body["signature"]), validate=True)
        except (KeyError, ValueError, TypeError) as exc:
            raise SCTDecodeError(f"malformed AddChainResponse: {exc}") from exc
        reader = _Reader(ds, "digitally-signed")
        hash_alg = reader.u8()
        sig_alg = reader.u8()
        signature = reader.vec(2)
        reader.end()
        sct = cls(version, log_id, timestamp, extensions, hash_alg, sig_alg, signature)
        _check_shape(sct)
        return sct


def log_id_for(public_key: Any) -> bytes:
    """The RFC 6962 §3.2 log ID: SHA-256 of the log key's DER SubjectPublicKeyInfo."""
    return hashlib.sha256(spki_der(public_key)).digest()


def encode_sct(sct: SignedCertificateTimestamp) -> bytes:
    """Serialize one SCT in its TLS form (RFC 6962 §3.2)."""
    _check_shape(sct)
    return (
        struct.pack(">B", sct.version)
        + sct.log_id
        + struct.pack(">Q", sct.timestamp_ms)
        + _vec16(sct.extensions, "extensions")
        + sct.digitally_signed()
    )


def decode_sct(data: bytes) -> SignedCertificateTimestamp:
    """Parse one TLS-encoded SCT, refusing trailing bytes (RFC 6962 §3.2)."""
    reader = _Reader(data, "SCT")
    sct = _read_sct(reader)
    reader.end()
    return sct


def encode_sct_list(scts: Sequence[SignedCertificateTimestamp]) -> bytes:
    """The TLS ``SignedCertificateTimestampList`` (RFC 6962 §3.3): ``u16 total | {u16 | SCT}*``."""
    body = b"".join(_vec16(encode_sct(s), "SCT") for s in scts)
    return _vec16(body, "SCT list")


def encode_sct_list_extension(scts: Sequence[SignedCertificateTimestamp]) -> bytes:
    """The X.509 extension value: the TLS list wrapped in a DER OCTET STRING (RFC 6962 §3.3)."""
    return _der_octet_string(encode_sct_list(scts))


def decode_sct_list(ext_value_bytes: bytes) -> list[SignedCertificateTimestamp]:
    """Parse an SCT list given as the extension value (DER OCTET STRING) or the bare TLS list.

    ``cryptography``'s ``PrecertificateSignedCertificateTimestamps.public_bytes()`` and
    ``UnrecognizedExtension.value`` both give the OCTET STRING form (``04 …``); the CT log's own
    code passes the bare list. The OCTET STRING is recognised only when its DER length covers the
    input exactly, which a bare list (whose first u16 is ``len - 2``) never does in practice.
    """
    data = _strip_der_octet_string(ext_value_bytes)
    reader = _Reader(data, "SCT list")
    body = _Reader(reader.vec(2), "SCT list")
    reader.end()
    scts: list[SignedCertificateTimestamp] = []
    while body.remaining():
        one = _Reader(body.vec(2), "SCT")
        scts.append(_read_sct(one))
        one.end()
    if not scts:
        raise SCTDecodeError("SCT list is empty (RFC 6962 §3.3 requires at least one)")
    return scts


def leaf_index_extension(index: int) -> bytes:
    """``CtExtensions`` holding only ``leaf_index`` = ``index`` (C2SP static-ct-api, 8 bytes)."""
    if not 0 <= index <= MAX_LEAF_INDEX:
        raise SCTError(f"leaf index {index} does not fit the 40-bit LeafIndex of static-ct-api")
    return bytes([EXTENSION_LEAF_INDEX]) + _vec16(index.to_bytes(5, "big"), "leaf_index")


def decode_ct_extensions(extensions: bytes) -> dict[int, bytes]:
    """Parse ``CtExtensions`` (C2SP static-ct-api): extension type → data, no duplicate types."""
    reader = _Reader(extensions, "CtExtensions")
    found: dict[int, bytes] = {}
    while reader.remaining():
        kind = reader.u8()
        data = reader.vec(2)
        if kind in found:
            raise SCTDecodeError(f"CtExtensions repeats extension type {kind}")
        found[kind] = data
    return found


def leaf_index_of(extensions: bytes) -> int | None:
    """The static-ct-api ``leaf_index`` in an SCT's extensions, or None for an RFC 6962 log."""
    data = decode_ct_extensions(extensions).get(EXTENSION_LEAF_INDEX)
    if data is None:
        return None
    if len(data) != 5:
        raise SCTDecodeError(f"leaf_index extension holds {len(data)} bytes, not 5 (uint40)")
    return int.from_bytes(data, "big")


def precert_signed_data(
    sct: SignedCertificateTimestamp, issuer_key_hash: bytes, tbs_precert: bytes
) -> bytes:
    """The bytes a log signs for a precertificate entry (RFC 6962 §3.2, ``precert_entry``).

    ``issuer_key_hash`` is SHA-256 of the issuing CA's SPKI; ``tbs_precert`` is the precert's
    TBSCertificate without the poison — for a final certificate, ``tbs_precertificate_bytes``.
    """
    if len(issuer_key_hash) != 32:
        raise SCTDecodeError(f"issuer_key_hash must be 32 bytes, not {len(issuer_key_hash)}")
    entry = issuer_key_hash + _vec24(tbs_precert, "TBSCertificate")
    return _signed_data(sct, ENTRY_TYPE_PRECERT, entry)


def x509_signed_data(sct: SignedCertificateTimestamp, cert_der: bytes) -> bytes:
    """The bytes a log signs for an ordinary certificate entry (RFC 6962 §3.2, ``x509_entry``)."""
    return _signed_data(sct, ENTRY_TYPE_X509, _vec24(cert_der, "certificate"))


def verify_sct(
    sct: SignedCertificateTimestamp,
    signed_data: bytes,
    public_key: Any,
    *,
    key_log_id: bytes | None = None,
) -> None:
    """Check the log's signature over ``signed_data``; raise :class:`SCTSignatureError` if bad.

    The log ID must match the key (RFC 6962 §3.2) and the declared algorithms must fit it:
    ECDSA with SHA-256/384/512, RSA PKCS#1 v1.5, or Ed25519 (pure, hash field ignored).
    ``key_log_id`` is :func:`log_id_for` of ``public_key`` when the caller keeps it computed.
    """
    if sct.version != SCT_VERSION_V1:
        raise SCTSignatureError(f"unsupported SCT version {sct.version} (only v1 = 0)")
    if (key_log_id if key_log_id is not None else log_id_for(public_key)) != sct.log_id:
        raise SCTSignatureError("SCT log ID does not match the CT log key")
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            _expect_alg(sct, SIG_ECDSA, "ECDSA")
            public_key.verify(sct.signature, signed_data, ec.ECDSA(_hash_of(sct)))
        elif isinstance(public_key, rsa.RSAPublicKey):
            _expect_alg(sct, SIG_RSA, "RSA")
            public_key.verify(sct.signature, signed_data, padding.PKCS1v15(), _hash_of(sct))
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            _expect_alg(sct, SIG_ED25519, "Ed25519")
            public_key.verify(sct.signature, signed_data)
        else:
            raise SCTSignatureError(f"unsupported CT log key type {type(public_key).__name__}")
    except InvalidSignature as exc:
        raise SCTSignatureError("SCT signature does not verify with the CT log key") from exc


def algorithms_for_key(public_key: Any) -> tuple[int, int]:
    """The (hash_alg, sig_alg) pair a log with this key writes into its SCTs (RFC 5246 §7.4.1.4.1).

    :class:`keyless.keys.KeySigner` signs ECDSA with the curve's hash, RSA with SHA-256, and
    Ed25519 purely (hash field conventionally SHA-256, as RFC 8422 leaves it meaningless).
    """
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return _HASH_CODES[hash_for_curve(public_key.curve).name], SIG_ECDSA
    if isinstance(public_key, rsa.RSAPublicKey):
        return HASH_SHA256, SIG_RSA
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return HASH_SHA256, SIG_ED25519
    raise SCTError(f"unsupported CT log key type {type(public_key).__name__}")


def _expect_alg(sct: SignedCertificateTimestamp, sig_alg: int, name: str) -> None:
    if sct.sig_alg != sig_alg:
        raise SCTSignatureError(
            f"SCT declares signature algorithm {sct.sig_alg} but the CT log key is {name}"
        )


def _hash_of(sct: SignedCertificateTimestamp) -> hashes.HashAlgorithm:
    cls = _HASHES.get(sct.hash_alg)
    if cls is None:
        raise SCTSignatureError(f"unsupported SCT hash algorithm {sct.hash_alg}")
    return cls()


def _signed_data(sct: SignedCertificateTimestamp, entry_type: int, signed_entry: bytes) -> bytes:
    return (
        struct.pack(
            ">BBQH",
            sct.version,
            SIGNATURE_TYPE_CERTIFICATE_TIMESTAMP,
            sct.timestamp_ms,
            entry_type,
        )
        + signed_entry
        + _vec16(sct.extensions, "extensions")
    )


def _check_shape(sct: SignedCertificateTimestamp) -> None:
    if len(sct.log_id) != 32:
        raise SCTDecodeError(f"SCT log ID must be 32 bytes, not {len(sct.log_id)}")
    if not all(0 <= v <= 0xFF for v in (sct.version, sct.hash_alg, sct.sig_alg)):
        raise SCTDecodeError("SCT version and algorithm fields are single bytes")
    if not 0 <= sct.timestamp_ms < 2**64:
        raise SCTDecodeError("SCT timestamp is not an unsigned 64-bit number")


def _read_sct(reader: _Reader) -> SignedCertificateTimestamp:
    version = reader.u8()
    if version != SCT_VERSION_V1:
        raise SCTDecodeError(f"unsupported SCT version {version} (only v1 = 0)")
    log_id = reader.take(32)
    (timestamp,) = struct.unpack(">Q", reader.take(8))
    extensions = reader.vec(2)
    hash_alg = reader.u8()
    sig_alg = reader.u8()
    signature = reader.vec(2)
    return SignedCertificateTimestamp(
        version, log_id, timestamp, extensions, hash_alg, sig_alg, signature
    )


def _vec16(data: bytes, what: str) -> bytes:
    if len(data) > _MAX_U16:
        raise SCTDecodeError(f"{what} of {len(data)} bytes exceeds the u16 length limit")
    return struct.pack(">H", len(data)) + data


def _vec24(data: bytes, what: str) -> bytes:
    if len(data) > _MAX_U24:
        raise SCTDecodeError(f"{what} of {len(data)} bytes exceeds the u24 length limit")
    return len(data).to_bytes(3, "big") + data


def _der_octet_string(data: bytes) -> bytes:
    n = len(data)
    if n < 0x80:
        header = bytes([0x04, n])
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        header = bytes([0x04, 0x80 | len(size)]) + size
    return header + data


def _strip_der_octet_string(data: bytes) -> bytes:
    if len(data) < 2 or data[0] != 0x04:
        return data
    first = data[1]
    if first < 0x80:
        length, offset = first, 2
    else:
        count = first & 0x7F
        if count == 0 or count > 3 or len(data) < 2 + count:
            return data
        length, offset = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    if offset + length != len(data):
        return data
    return data[offset:]


class _Reader:
    """A bounds-checked cursor over TLS-encoded bytes; every short read is an SCTDecodeError."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int) -> bytes:
        if self.remaining() < n:
            raise SCTDecodeError(f"{self._what} is truncated")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def vec(self, width: int) -> bytes:
        return self.take(int.from_bytes(self.take(width), "big"))

    def end(self) -> None:
        if self.remaining():
            raise SCTDecodeError(f"{self._what} has {self.remaining()} trailing bytes")
