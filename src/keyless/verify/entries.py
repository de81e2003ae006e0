"""Transparency-log entry ↔ bundle consistency (protocols.md §9 step 8, anti CVE-2022-36056).

The log vouches only for its canonicalized body; a verifier must rebuild the body it expects from
the bundle's own signature, key and artifact digest and compare, or an attacker could pair a valid
entry with different materials. Bodies are compared as parsed JSON against the exact expected
structure (no extra or missing keys); the PEM-encoded keys of Rekor v1 kinds are compared by their
DER contents, so PEM line-wrapping differences between clients (interop.md §5 item 3) do not
matter while the key itself must be identical.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from keyless import keys
from keyless.formats import der
from keyless.formats.dsse import Envelope
from keyless.verify.errors import LogEntryMismatchError

__all__ = [
    "HASH_NAMES",
    "V1_HASH_NAMES",
    "check_dsse_v001",
    "check_dsse_v002",
    "check_hashedrekord_v001",
    "check_hashedrekord_v002",
    "check_intoto_v002",
    "key_details",
    "parse_body",
]

#: Rekor v2 HashAlgorithm names by digest length (protocols.md §6).
HASH_NAMES = {32: "SHA2_256", 48: "SHA2_384", 64: "SHA2_512"}
#: Rekor v1 hashedrekord algorithm names.
V1_HASH_NAMES = {"SHA2_256": "sha256", "SHA2_384": "sha384", "SHA2_512": "sha512"}


def parse_body(body: bytes) -> dict[str, Any]:
    """The canonicalized body as a JSON object."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise LogEntryMismatchError("transparency log entry body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise LogEntryMismatchError("transparency log entry body is not a JSON object")
    return value


def key_details(public_key: Any) -> str:
    """The ``PublicKeyDetails`` name Rekor v2 records for a key (protocols.md §4, §6)."""
    details = keys.key_details(public_key, prehashed=True)
    if details is not None:
        return details
    raise LogEntryMismatchError(f"unsupported signing key type {type(public_key).__name__}")


def _pem_der(b64_pem: Any, what: str) -> bytes:
    """DER inside a base64-encoded PEM certificate or public key (Rekor v1 ``publicKey``)."""
    if not isinstance(b64_pem, str):
        raise LogEntryMismatchError(f"log entry {what} is not a string")
    try:
        pem = base64.b64decode(b64_pem, validate=True)
        if b"CERTIFICATE" in pem:
            return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
        return keys.spki_der(serialization.load_pem_public_key(pem))
    except (binascii.Error, ValueError) as exc:
        raise LogEntryMismatchError(f"log entry {what} is not a PEM certificate or key") from exc


def _pem_is(b64_pem: Any, key_der: bytes, what: str) -> bool:
    """Whether a base64-encoded PEM block (RFC 7468) holds exactly ``key_der``.

    The hot case, a well-formed CERTIFICATE block compared with a certificate that the verifier
    has already parsed, is decoded directly; everything else (public keys, other wrapping,
    malformed input) goes through cryptography's PEM loaders, which also name what is wrong.
    """
    if isinstance(b64_pem, str) and _is_certificate_der(key_der):
        try:
            lines = base64.b64decode(b64_pem, validate=True).strip().split(b"\n")
            if (
                len(lines) >= 3
                and lines[0] == b"-----BEGIN CERTIFICATE-----"
                and lines[-1] == b"-----END CERTIFICATE-----"
                and all(lines[1:-1])  # a blank line inside the block is malformed PEM
                and binascii.a2b_base64(b"".join(lines[1:-1]), strict_mode=True) == key_der
            ):
                return True
        except (binascii.Error, ValueError):
            pass
    return _pem_der(b64_pem, what) == key_der


def _is_certificate_der(data: bytes) -> bool:
    """A Certificate starts SEQUENCE { SEQUENCE (tbs) { [0] version | serial … } }, a
    SubjectPublicKeyInfo SEQUENCE { SEQUENCE (algorithm) { OID … } } (RFC 5280 §4.1)."""
    try:
        _, start, stop = der.element(data, 0, len(data))
        tag, inner, inner_stop = der.element(data, start, stop)
        first, _, _ = der.element(data, inner, inner_stop)
    except der.DERError:
        return False
    return tag == der.SEQUENCE and first != der.OID


def _mismatch() -> LogEntryMismatchError:
    return LogEntryMismatchError("transparency log entry is inconsistent with the bundle")


def check_hashedrekord_v001(
    body: dict[str, Any], signature: bytes, algorithm: str, digest: bytes, key_der: bytes
) -> None:
    """hashedrekord 0.0.1: ``{data.hash{algorithm,value hex}, signature{content, publicKey}}``.

    ``key_der`` is the leaf certificate DER (keyless) or the SPKI DER (managed key).
    """
    try:
        key_content = body["spec"]["signature"]["publicKey"]["content"]
    except (KeyError, TypeError) as exc:
        raise _mismatch() from exc
    expected = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {
                "hash": {"algorithm": V1_HASH_NAMES.get(algorithm, "?"), "value": digest.hex()}
            },
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "publicKey": {"content": key_content},
            },
        },
    }
    if body != expected:
        raise _mismatch()
    if not _pem_is(key_content, key_der, "publicKey.content"):
        raise LogEntryMismatchError("transparency log entry names another signing key")


def _v2_verifier(public_key: Any, cert_der: bytes | None) -> dict[str, Any]:
    """The Rekor v2 ``Verifier`` message for the bundle's certificate or managed key."""
    verifier: dict[str, Any] = {"keyDetails": key_details(public_key)}
    if cert_der is not None:
        verifier["x509Certificate"] = {"rawBytes": base64.b64encode(cert_der).decode()}
    else:
        verifier["publicKey"] = {"rawBytes": base64.b64encode(keys.spki_der(public_key)).decode()}
    return verifier


def check_dsse_v002(
    body: dict[str, Any], envelope: Envelope, public_key: Any, cert_der: bytes | None
) -> None:
    """dsse 0.0.2 (deprecated Rekor v2 ``dsseRequestV002``, still sent by sigstore-js 5;
    protocols.md §4): payload hash and the one ``{content, verifier}`` signature must match."""
    expected = {
        "apiVersion": "0.0.2",
        "kind": "dsse",
        "spec": {
            "dsseV002": {
                "payloadHash": {
                    "algorithm": "SHA2_256",
                    "digest": base64.b64encode(hashlib.sha256(envelope.payload).digest()).decode(),
                },
                "signatures": [
                    {
                        "content": base64.b64encode(s.sig).decode(),
                        "verifier": _v2_verifier(public_key, cert_der),
                    }
                    for s in envelope.signatures
                ],
            }
        },
    }
    if body != expected:
        raise _mismatch()


def check_hashedrekord_v002(
    body: dict[str, Any],
    signature: bytes,
    digest: bytes,
    public_key: Any,
    cert_der: bytes | None,
) -> None:
    """hashedrekord 0.0.2 (Rekor v2 Entry, protocols.md §4); also hashedrekord-over-DSSE."""
    verifier = _v2_verifier(public_key, cert_der)
    expected = {
        "apiVersion": "0.0.2",
        "kind": "hashedrekord",
        "spec": {
            "hashedRekordV002": {
                "data": {
                    "algorithm": HASH_NAMES.get(len(digest), "?"),
                    "digest": base64.b64encode(digest).decode(),
                },
                "signature": {
                    "content": base64.b64encode(signature).decode(),
                    "verifier": verifier,
                },
            }
        },
    }
    if body != expected:
        raise _mismatch()


def check_dsse_v001(body: dict[str, Any], envelope: Envelope, key_der: bytes) -> None:
    """dsse 0.0.1: payload hash and ``[{signature, verifier}]`` must match (the envelope hash
    covers uncanonicalized JSON and cannot be rebuilt, as sigstore-python notes)."""
    try:
        spec = body["spec"]
        signatures = spec["signatures"]
        if body.get("apiVersion") != "0.0.1" or body.get("kind") != "dsse":
            raise _mismatch()
        payload_hash = spec["payloadHash"]
    except (KeyError, TypeError) as exc:
        raise _mismatch() from exc
    if payload_hash != {
        "algorithm": "sha256",
        "value": hashlib.sha256(envelope.payload).hexdigest(),
    }:
        raise LogEntryMismatchError("log entry payload hash does not match the DSSE envelope")
    if not isinstance(signatures, list) or len(signatures) != len(envelope.signatures):
        raise LogEntryMismatchError("log entry signatures do not match the DSSE envelope")
    logged = sorted(
        (s.get("signature"), s.get("verifier")) for s in signatures if isinstance(s, dict)
    )
    mine = sorted(base64.b64encode(s.sig).decode() for s in envelope.signatures)
    if len(logged) != len(mine) or [sig for sig, _ in logged] != mine:
        raise LogEntryMismatchError("log entry signatures do not match the DSSE envelope")
    for _, verifier in logged:
        if not _pem_is(verifier, key_der, "verifier"):
            raise LogEntryMismatchError("transparency log entry names another signing key")


def check_intoto_v002(body: dict[str, Any], envelope: Envelope, key_der: bytes) -> None:
    """intoto 0.0.2 (Rekor v1, written by @sigstore/cli): the envelope is stored with its payload
    and signatures base64-encoded once more; payload, type, signatures, key and payload hash must
    all match."""
    try:
        if body.get("apiVersion") != "0.0.2" or body.get("kind") != "intoto":
            raise _mismatch()
        content = body["spec"]["content"]
        logged = content["envelope"]
        payload_hash = content["payloadHash"]
        payload = base64.b64decode(
            base64.b64decode(logged["payload"], validate=True), validate=True
        )
        sigs = logged["signatures"]
        logged_sigs = [
            (
                base64.b64decode(base64.b64decode(s["sig"], validate=True), validate=True),
                s["publicKey"],
            )
            for s in sigs
        ]
    except (KeyError, TypeError, binascii.Error, ValueError) as exc:
        raise _mismatch() from exc
    if logged.get("payloadType") != envelope.payload_type or payload != envelope.payload:
        raise LogEntryMismatchError("log entry envelope does not match the DSSE envelope")
    if payload_hash != {
        "algorithm": "sha256",
        "value": hashlib.sha256(envelope.payload).hexdigest(),
    }:
        raise LogEntryMismatchError("log entry payload hash does not match the DSSE envelope")
    if sorted(s for s, _ in logged_sigs) != sorted(s.sig for s in envelope.signatures):
        raise LogEntryMismatchError("log entry signatures do not match the DSSE envelope")
    for _, key in logged_sigs:
        if not _pem_is(key, key_der, "publicKey"):
            raise LogEntryMismatchError("transparency log entry names another signing key")
