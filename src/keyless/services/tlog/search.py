"""Search keys of log entries: by artifact digest, certificate identity + issuer, key fingerprint.

Rekor v2 dropped search (its users asked for it in vain); Rekor v1 offers it through the
deprecated ``POST /api/v1/index/retrieve`` (protocols.md §3). keyless derives the keys **only from
the canonical body** that is in the log, so the index can always be rebuilt by re-reading the
log's own entries (:meth:`SearchIndexer.rebuild`); nothing the client sent outside the body counts.
The write path may hand over what it already parsed *of that body's own bytes* for a hashedrekord
0.0.2 entry (:class:`ParsedEntry`, :func:`keys_for_parsed`), which spares re-parsing; the keys are
exactly :func:`keys_for_body`'s (tests/unit/tlog/test_tlog_search_parsed.py), and identity keys
still come only after a fresh path validation of that entry's certificate.

Key spellings (stored in ``storage.search_index`` per log name):

* ``digest:<alg>:<hex>`` — artifact digest (hashedrekord data, DSSE/in-toto payload hash, and the
  ``subject[].digest`` values of an in-toto statement payload where the body carries the payload);
* ``email:<address>`` (lower-cased) and ``uri:<uri>`` — SANs of a verifier certificate;
* ``identity:<issuer>|<san>`` — SAN together with the OIDC issuer (Fulcio ext. 57264.1.8/.1.1);
* ``key:sha256:<hex>`` — SHA-256 of the verifier's DER SubjectPublicKeyInfo.

The three identity keys come only from certificates that chain to a CA of this instance's
trusted root (:class:`~keyless.services.tlog.identities.TrustedIssuers`): anyone can log an entry
with a self-signed certificate naming someone else, and that must not show up in a search by the
victim's identity. Such entries keep their digest and key keys.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from keyless.errors import InvalidInput
from keyless.keys import PublicKey, spki_der
from keyless.services.tlog.identities import TrustedIssuers

ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")

_V2_HASH = {"SHA2_256": "sha256", "SHA2_384": "sha384", "SHA2_512": "sha512"}


def digest_key(algorithm: str, hex_digest: str) -> str:
    """Key of an artifact digest (``algorithm`` as ``sha256``…)."""
    return f"digest:{algorithm.lower()}:{hex_digest.lower()}"


def digest_key_v2(algorithm: str, digest: bytes) -> str:
    """Key of a Rekor v2 digest (``algorithm`` as protobuf-specs ``SHA2_256``…)."""
    return digest_key(_V2_HASH.get(algorithm, algorithm), digest.hex())


def email_key(email: str) -> str:
    """Key of a SAN e-mail address (case-insensitive, as Rekor's index)."""
    return f"email:{email.lower()}"


def uri_key(uri: str) -> str:
    """Key of a SAN URI (exact)."""
    return f"uri:{uri}"


def identity_key(issuer: str, san: str) -> str:
    """Key of a SAN bound to its OIDC issuer (e-mail SANs lower-cased)."""
    return f"identity:{issuer}|{san.lower() if '@' in san and '://' not in san else san}"


def key_fingerprint_key(spki_der: bytes) -> str:
    """Key of a public key: SHA-256 of its DER SubjectPublicKeyInfo."""
    return f"key:sha256:{hashlib.sha256(spki_der).hexdigest()}"


#: What cryptography raises for extensions it cannot decode (RFC 5280 §4.2 violations).
MALFORMED_EXTENSIONS = (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


def _utf8string(raw: bytes) -> str | None:
    """Text of a DER UTF8String (tag 0x0C, short or long length), or None if not one."""
    if len(raw) >= 2 and raw[0] == 0x0C:
        offset = 2 if raw[1] < 0x80 else 2 + (raw[1] & 0x7F)
        return raw[offset:].decode("utf-8", "replace")
    return None


def _identities(cert: x509.Certificate) -> tuple[list[str], list[str], str | None]:
    """The SAN e-mail addresses and URIs of ``cert`` and its OIDC issuer (.1.8 as UTF8String,
    else the raw .1.1), in one pass over its extensions (``MALFORMED_EXTENSIONS`` propagate)."""
    san: x509.SubjectAlternativeName | None = None
    v2: str | None = None
    v1: str | None = None
    for ext in cert.extensions:
        value = ext.value
        if isinstance(value, x509.SubjectAlternativeName):
            san = value
        elif isinstance(value, x509.UnrecognizedExtension):
            if ext.oid == ISSUER_V2:
                v2 = _utf8string(value.value)
            elif ext.oid == ISSUER_V1:
                v1 = value.value.decode("utf-8", "replace")
    if san is None:
        return [], [], None
    return (san.get_values_for_type(x509.RFC822Name),
            san.get_values_for_type(x509.UniformResourceIdentifier),
            v2 if v2 is not None else v1)


def certificate_keys(
    cert: x509.Certificate, trusted: TrustedIssuers | None, public_key: PublicKey | None = None
) -> list[str]:
    """The key fingerprint of a certificate, plus its identity keys when ``trusted`` vouches for
    it (``None``: no CA is trusted, so no identity is indexed).

    ``public_key``: ``cert.public_key()`` when the caller already has it (saves loading it again).
    The path validation (a signature check: most of the cost) runs only for a certificate that
    names an identity to index.
    """
    key = cert.public_key() if public_key is None else public_key
    keys = [key_fingerprint_key(spki_der(key))]
    if trusted is None:
        return keys
    try:
        emails, uris, issuer = _identities(cert)
    except MALFORMED_EXTENSIONS:
        return keys  # no identity can be read: the entry is still findable by its key
    if not (emails or uris) or not trusted.vouches_for(cert):
        return keys
    keys.extend(email_key(email) for email in emails)
    keys.extend(uri_key(uri) for uri in uris)
    if issuer:
        keys.extend(identity_key(issuer, name) for name in (*emails, *uris))
    return keys


def pem_keys(pem: bytes, trusted: TrustedIssuers | None) -> list[str]:
    """Keys of a PEM certificate or PEM public key (Rekor v1 bodies)."""
    try:
        if b"CERTIFICATE" in pem:
            return certificate_keys(x509.load_pem_x509_certificate(pem), trusted)
        return [key_fingerprint_key(spki_der(serialization.load_pem_public_key(pem)))]
    except (ValueError, TypeError):
        return []


def _verifier_v2_keys(verifier: dict[str, Any], trusted: TrustedIssuers | None) -> list[str]:
    try:
        if "x509Certificate" in verifier:
            der = base64.b64decode(verifier["x509Certificate"]["rawBytes"])
            return certificate_keys(x509.load_der_x509_certificate(der), trusted)
        der = base64.b64decode(verifier["publicKey"]["rawBytes"])
        return [key_fingerprint_key(spki_der(serialization.load_der_public_key(der)))]
    except (KeyError, TypeError, ValueError, binascii.Error):
        return []


def _statement_subject_keys(payload: bytes) -> list[str]:
    """Digests of an in-toto statement's subjects (what users search attestations by)."""
    try:
        statement = json.loads(payload)
    except (ValueError, RecursionError):
        return []
    keys: list[str] = []
    subjects = statement.get("subject") if isinstance(statement, dict) else None
    for subject in subjects if isinstance(subjects, list) else []:
        digests = subject.get("digest") if isinstance(subject, dict) else None
        if isinstance(digests, dict):
            keys.extend(
                digest_key(alg, value)
                for alg, value in digests.items()
                if isinstance(alg, str) and isinstance(value, str) and value.isalnum()
            )
    return keys


def keys_for_body(body: bytes, trusted: TrustedIssuers | None = None) -> list[str]:
    """Every search key of a canonical body (any kind/version the log stores), deduplicated;
    identity keys only for certificates ``trusted`` vouches for."""
    try:
        entry = json.loads(body)
        keys = _keys(entry["kind"], entry["apiVersion"], entry["spec"], trusted)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, RecursionError):
        return []
    return list(dict.fromkeys(keys))


@dataclass(frozen=True)
class ParsedEntry:
    """What the write path parsed of a hashedrekord 0.0.2 entry, from the very bytes its canonical
    body carries: the data's algorithm (``SHA2_256``…) and digest, the verifier's public key and
    its certificate (``None`` for a public-key verifier). No verification outcome is in it."""

    algorithm: str
    digest: bytes
    public_key: PublicKey
    certificate: x509.Certificate | None


def keys_for_parsed(parsed: ParsedEntry, trusted: TrustedIssuers | None = None) -> list[str]:
    """:func:`keys_for_body` of the entry ``parsed`` came from, without parsing the body again;
    the certificate's path validation runs afresh, as there."""
    keys = [digest_key_v2(parsed.algorithm, parsed.digest)]
    with contextlib.suppress(TypeError, ValueError):  # as _verifier_v2_keys forgives them
        if parsed.certificate is None:
            keys.append(key_fingerprint_key(spki_der(parsed.public_key)))
        else:
            keys.extend(certificate_keys(parsed.certificate, trusted, parsed.public_key))
    return list(dict.fromkeys(keys))


def _keys(
    kind: str, version: str, spec: dict[str, Any], trusted: TrustedIssuers | None
) -> list[str]:
    if (kind, version) == ("hashedrekord", "0.0.1"):
        hash_ = spec["data"]["hash"]
        pem = base64.b64decode(spec["signature"]["publicKey"]["content"])
        return [digest_key(hash_["algorithm"], hash_["value"]), *pem_keys(pem, trusted)]
    if (kind, version) == ("hashedrekord", "0.0.2"):
        inner = spec["hashedRekordV002"]
        data = inner["data"]
        return [
            digest_key_v2(data["algorithm"], base64.b64decode(data["digest"])),
            *_verifier_v2_keys(inner["signature"]["verifier"], trusted),
        ]
    if (kind, version) == ("dsse", "0.0.1"):
        keys = [digest_key("sha256", spec["payloadHash"]["value"]),
                digest_key("sha256", spec["envelopeHash"]["value"])]
        for sig in spec["signatures"]:
            keys.extend(pem_keys(base64.b64decode(sig["verifier"]), trusted))
        return keys
    if (kind, version) == ("dsse", "0.0.2"):
        inner = spec["dsseV002"]
        keys = [digest_key("sha256", base64.b64decode(inner["payloadHash"]["digest"]).hex())]
        for sig in inner["signatures"]:
            keys.extend(_verifier_v2_keys(sig["verifier"], trusted))
        return keys
    if (kind, version) == ("intoto", "0.0.2"):
        content = spec["content"]
        keys = [digest_key("sha256", content["payloadHash"]["value"]),
                digest_key("sha256", content["hash"]["value"])]
        envelope = content["envelope"]
        payload = base64.b64decode(base64.b64decode(envelope["payload"]))
        keys.extend(_statement_subject_keys(payload))
        for sig in envelope["signatures"]:
            keys.extend(pem_keys(base64.b64decode(sig["publicKey"]), trusted))
        return keys
    return []


def parse_digest_query(value: str) -> str:
    """``sha256:<hex>`` (or bare 64-hex SHA-256) from a search request, as a digest key."""
    algorithm, _, hex_digest = value.partition(":") if ":" in value else ("sha256", "", value)
    algorithm = algorithm.lower()
    sizes = {"sha256": 64, "sha384": 96, "sha512": 128}
    hex_digest = hex_digest.lower()
    if algorithm not in sizes:
        raise InvalidInput("hash must be sha256:, sha384: or sha512: followed by a hex digest")
    if len(hex_digest) != sizes[algorithm] or any(c not in "0123456789abcdef" for c in hex_digest):
        raise InvalidInput(f"hash must be {sizes[algorithm]} hex digits for {algorithm}")
    return digest_key(algorithm, hex_digest)
