"""Shared parsing and signature checks for every entry kind of the transparency log.

Rekor verifies the signature of every proposed entry before it is logged (protocols.md §3.1, §4):
a log that records unverifiable signatures is a spam sink. The helpers here do that with
``cryptography`` only, and turn every malformed field into :class:`InvalidInput` naming the field,
so a handler never answers 500 for bad input (contracts.md §5).
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from keyless.errors import InvalidInput, VerificationError, field_name
from keyless.keys import PublicKey, hash_for_curve, spki_der
from keyless.services.tlog.kinds import ed25519ph
from keyless.services.tlog.search import ParsedEntry

HEX_RE = re.compile(r"^[0-9a-f]+$")

#: hash name (Rekor v1 spelling) → (cryptography hash, digest size). SHA-1/MD5 are refused.
HASHES_V1: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}

#: protobuf-specs HashAlgorithm names (protocols.md §6).
HASHES_V2: dict[str, hashes.HashAlgorithm] = {
    "SHA2_256": hashes.SHA256(),
    "SHA2_384": hashes.SHA384(),
    "SHA2_512": hashes.SHA512(),
}


#: The ECDSA signature algorithm over a pre-computed digest of each hash (immutable parameters,
#: built once instead of per request).
_ECDSA_PREHASHED: dict[str, ec.ECDSA] = {
    alg.name: ec.ECDSA(Prehashed(alg))
    for alg in (hashes.SHA256(), hashes.SHA384(), hashes.SHA512())
}


class EntrySignatureError(VerificationError):
    """The signature of a proposed entry does not verify with the key it names."""


@dataclass(frozen=True)
class Proposed:
    """A verified proposed entry, ready to be logged; ``body`` is the canonical leaf (JCS).

    Its search keys are derived from the body alone, off the request path, by the indexer that
    knows which CAs to believe: ``parsed``, when a kind gives it, is what the kind already parsed
    of the body's own bytes (the certificate, its key, the digest), so that the indexer need not
    parse them again (``search.keys_for_parsed``, the same keys as ``search.keys_for_body``).
    """

    kind: str
    api_version: str
    body: bytes
    parsed: ParsedEntry | None = None


@dataclass(frozen=True)
class Verifier:
    """A key that verifies entries, with the certificate it came from (if any)."""

    key: PublicKey
    certificate: x509.Certificate | None = None

    @property
    def spki(self) -> bytes:
        """DER SubjectPublicKeyInfo, the basis of key fingerprints."""
        return spki_der(self.key)

    def canonical_pem(self) -> bytes:
        """PEM as Rekor re-encodes it: 64 columns, ``\\n`` line ends, trailing newline.

        sigstore-python rebuilds bodies from the DER certificate in exactly this form and compares
        bytes (interop.md §5 gotcha 3), so the log stores this form whatever the client sent.
        """
        if self.certificate is not None:
            return self.certificate.public_bytes(serialization.Encoding.PEM)
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def jcs(value: Any) -> bytes:
    """RFC 8785 canonical JSON, the form every Rekor body is stored in.

    ``value`` must hold only objects, arrays, strings, integers below 2**53, booleans and null —
    as every log body and SET payload does (floats would need ES6 number formatting). Then, when
    no string needs a ``\\u`` escape (non-ASCII or rare control characters), Python's sorted
    compact ``json.dumps`` produces exactly the RFC 8785 bytes (§3.2.2.2 escapes are ES6's, which
    Python's short escapes match; keys are then ASCII, so code-point order is UTF-16 order,
    §3.2.3) at a tenth of the cost; anything else goes through ``rfc8785``.
    """
    fast = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    if "\\u" not in fast:
        return fast.encode()
    return bytes(rfc8785.dumps(value))


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def obj(value: Any, what: str) -> dict[str, Any]:
    """``value`` as a JSON object, or :class:`InvalidInput` naming ``what``."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return value


def string(value: Any, what: str) -> str:
    """``value`` as a non-empty string."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} must be a non-empty string")
    return value


def b64(value: Any, what: str) -> bytes:
    """Strict standard base64 (RFC 4648 §4), as protobuf-JSON and Rekor's strfmt use."""
    text = string(value, what)
    try:  # base64.b64decode(text, validate=True) without its wrapper's copy of ``text``
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{what} is not valid base64") from exc


#: Base64 characters whose low 4 (2) bits are zero: the only ones canonical base64 has before
#: ``==`` (``=``), whose pad bits are zero (RFC 4648 §3.5).
_BEFORE_PAD2 = frozenset("AQgw")
_BEFORE_PAD1 = frozenset("AEIMQUYcgkosw048")


def b64_canonical(value: Any, what: str) -> tuple[bytes, str]:
    """:func:`b64`, and the canonical base64 of the bytes (what :func:`b64e` would write):
    ``value`` itself when it is canonical, which is the usual case. Strict decoding leaves only
    the pad bits free (non-zero pad bits decode to the same bytes); such input is re-encoded."""
    data = b64(value, what)
    text: str = value
    if text[-1] != "=" or (
        text[-3] in _BEFORE_PAD2 if text[-2] == "=" else text[-2] in _BEFORE_PAD1
    ):
        return data, text
    return data, b64e(data)


def b64e(data: bytes) -> str:
    """Standard base64 with padding."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def only_keys(value: dict[str, Any], allowed: AbstractSet[str], what: str) -> None:
    """Refuse unknown fields, as protojson and Rekor's swagger validation do.

    A field whose value is ``null`` counts as absent (proto3 JSON and swagger both read it so;
    sigstore-python's pydantic models emit unset optional fields as ``null``).
    """
    if value.keys() <= allowed:
        return
    unknown = sorted(k for k, v in value.items() if k not in allowed and v is not None)
    if unknown:
        raise InvalidInput(f"{what} has unknown field(s): {field_names(unknown)}")


def field_names(names: list[str], limit: int = 5) -> str:
    """Hostile JSON keys for an error message: at most ``limit``, each shortened."""
    listed = ", ".join(field_name(k) for k in names[:limit])
    return listed + (f" and {len(names) - limit} more" if len(names) > limit else "")


def load_pem_verifier(pem: bytes, what: str) -> Verifier:
    """A PEM certificate or public key (Rekor v1 ``publicKey.content``, DSSE verifiers)."""
    if b"-----BEGIN CERTIFICATE-----" in pem:
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise InvalidInput(f"{what} is not a valid PEM certificate") from exc
        try:
            cert_key = cert.public_key()  # read lazily: a bad key surfaces only here
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise InvalidInput(f"{what} has an unreadable public key") from exc
        return Verifier(_supported(cert_key, what), cert)
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(f"{what} is neither a PEM certificate nor a PEM public key") from exc
    return Verifier(_supported(key, what))


def load_der_certificate(der: bytes, what: str) -> Verifier:
    """A DER certificate (Rekor v2 ``x509Certificate.rawBytes``)."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise InvalidInput(f"{what} is not a valid DER certificate") from exc
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(f"{what} has an unreadable public key") from exc
    return Verifier(_supported(key, what), cert)


def load_der_public_key(der: bytes, what: str) -> Verifier:
    """A DER SubjectPublicKeyInfo (Rekor v2 ``publicKey.rawBytes``)."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(f"{what} is not a valid DER public key") from exc
    return Verifier(_supported(key, what))


def _supported(key: object, what: str) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1 | ec.SECP521R1):
            raise InvalidInput(f"{what}: ECDSA curve {key.curve.name} is not supported")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size not in (2048, 3072, 4096):
            raise InvalidInput(f"{what}: RSA keys must be 2048, 3072 or 4096 bits")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise InvalidInput(f"{what}: unsupported key type {type(key).__name__}")


def verify_digest(
    verifier: Verifier, signature: bytes, digest: bytes, algorithm: hashes.HashAlgorithm
) -> None:
    """Verify a signature over a *pre-computed* digest (hashedrekord, protocols.md §3.1/§4).

    ECDSA and RSA PKCS#1 v1.5 sign the digest directly (``Prehashed``); Ed25519 can only sign a
    digest as Ed25519ph (RFC 8032 §5.1, SHA-512 pre-hash), which is what Rekor accepts.
    """
    if len(digest) != algorithm.digest_size:
        raise InvalidInput(
            f"digest is {len(digest)} bytes but {algorithm.name} digests are "
            f"{algorithm.digest_size} bytes"
        )
    key = verifier.key
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            ecdsa = _ECDSA_PREHASHED.get(algorithm.name) or ec.ECDSA(Prehashed(algorithm))
            key.verify(signature, digest, ecdsa)
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), Prehashed(algorithm))
        else:
            if not isinstance(algorithm, hashes.SHA512):
                raise InvalidInput("Ed25519 keys sign digests only as Ed25519ph over SHA-512")
            ed25519ph.verify(key.public_bytes_raw(), signature, digest)
    except (InvalidSignature, ValueError) as exc:
        raise EntrySignatureError(
            "signature does not verify with the given key over the given digest"
        ) from exc


def verify_message(verifier: Verifier, signature: bytes, message: bytes) -> None:
    """Verify a signature over a whole message (the DSSE PAE).

    ECDSA: Rekor v1 loads every verifier with SHA-256, clients sign with the curve's hash; both
    are accepted. RSA: PKCS#1 v1.5 with SHA-256. Ed25519: pure (RFC 8032 §5.1.7).
    """
    key = verifier.key
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            candidates = [hash_for_curve(key.curve)]
            if not isinstance(candidates[0], hashes.SHA256):
                candidates.append(hashes.SHA256())
            for i, algorithm in enumerate(candidates):
                try:
                    key.verify(signature, message, ec.ECDSA(algorithm))
                    return
                except InvalidSignature:
                    if i == len(candidates) - 1:
                        raise
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise EntrySignatureError("signature does not verify with the given key") from exc


def hex_digest(value: Any, algorithm: str, what: str) -> bytes:
    """A lowercase hex digest whose length matches ``algorithm`` (Rekor v1 ``hash.value``)."""
    text = string(value, what)
    if not HEX_RE.match(text) or len(text) % 2:
        raise InvalidInput(f"{what} must be a lowercase hex digest")
    digest = bytes.fromhex(text)
    expected = HASHES_V1[algorithm].digest_size
    if len(digest) != expected:
        raise InvalidInput(f"{what} must be {expected} bytes for {algorithm}, not {len(digest)}")
    return digest
