"""What the monitor watches for: identities, identity patterns, an issuer, key fingerprints.

An entry matches when its certificate chains to a trusted CA (:class:`ChainVerifier`, at the
certificate's start of validity) and either names a watched identity (an exact SAN, or a full
match of a watched pattern) with the watched issuer, if any, or carries a watched issuer when no
identity is watched; or when its signing key (certificate or managed key) has a watched SHA-256
fingerprint (of the DER SubjectPublicKeyInfo). Only Rekor v2 entry kinds carry a verifier:
``hashedrekord`` and ``dsse`` 0.0.2.

Speed (the catch-up target is ≥ 20,000 entries/s): most entries belong to somebody else, so an
entry is only decoded when a watched identity or issuer occurs in it, base64-encoded at any of
the three byte alignments (:func:`base64_needles`), as it would in its certificate's DER; when
patterns or fingerprints are watched every entry is decoded (they need the parsed certificate).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from keyless.errors import Error, InvalidInput
from keyless.trust.material import TrustMaterial
from keyless.verify.certificate import ChainVerifier
from keyless.verify.policy import certificate_identities, certificate_issuer

__all__ = ["Match", "Watch", "base64_needles"]


@dataclass(frozen=True)
class Match:
    """A watched entry: who signed (identity, issuer; None for a managed key) and what."""

    identity: str | None
    issuer: str | None
    digest: str | None
    fingerprint: str


def _verifiers(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """The verifiers of a Rekor v2 entry and the digest it logs (``sha256:hex``)."""
    spec = body.get("spec")
    if body.get("apiVersion") != "0.0.2" or not isinstance(spec, dict):
        return [], None
    if body.get("kind") == "hashedrekord":
        inner = spec.get("hashedRekordV002") or {}
        sig = inner.get("signature") or {}
        found = [sig.get("verifier")]
        data = inner.get("data") or {}
    elif body.get("kind") == "dsse":
        inner = spec.get("dsseV002") or {}
        found = [s.get("verifier") for s in inner.get("signatures") or [] if isinstance(s, dict)]
        data = inner.get("payloadHash") or {}
    else:
        return [], None
    digest = None
    if isinstance(data, dict) and data.get("algorithm") == "SHA2_256":
        try:
            digest = "sha256:" + base64.b64decode(str(data.get("digest")), validate=True).hex()
        except (binascii.Error, ValueError):
            digest = None
    return [v for v in found if isinstance(v, dict)], digest


def _raw(verifier: dict[str, Any], field: str) -> bytes | None:
    value = verifier.get(field)
    if not isinstance(value, dict) or not isinstance(value.get("rawBytes"), str):
        return None
    try:
        return base64.b64decode(value["rawBytes"], validate=True)
    except (binascii.Error, ValueError):
        return None


def base64_needles(text: bytes) -> list[bytes]:
    """The base64 strings that occur in the encoding of any data containing ``text``.

    ``text`` starts at byte offset 0, 1 or 2 of a 3-byte group; for each, keep only the base64
    characters made of ``text``'s bits alone (not of the bytes around it).
    """
    needles = []
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + text).rstrip(b"=")
        if (pad + len(text)) % 3:
            encoded = encoded[:-1]
        encoded = encoded[(pad * 4 + 2) // 3 :]
        if not encoded:
            return [b""]  # too short to pin down at this alignment: every entry is a candidate
        needles.append(encoded)
    return needles


def _pem_der(value: Any) -> tuple[bytes | None, bytes | None]:
    """A Rekor v1 ``publicKey.content`` / ``verifier``: base64 of a PEM certificate or key."""
    if not isinstance(value, str):
        return None, None
    try:
        pem = base64.b64decode(value, validate=True)
        if b"-----BEGIN CERTIFICATE-----" in pem:
            cert = x509.load_pem_x509_certificate(pem)
            return cert.public_bytes(serialization.Encoding.DER), None
        key = serialization.load_pem_public_key(pem)
        return None, key.public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    except (binascii.Error, ValueError, TypeError):
        return None, None


def _v1_signers(body: dict[str, Any]) -> tuple[list[tuple[bytes | None, bytes | None]], str | None]:
    """Rekor v1 entries: ``hashedrekord`` 0.0.1 (one signer) and ``dsse``/``intoto`` 0.0.1/2."""
    spec = body.get("spec")
    if not isinstance(spec, dict):
        return [], None
    if body.get("kind") == "hashedrekord":
        signature = spec.get("signature") or {}
        key = signature.get("publicKey") or {} if isinstance(signature, dict) else {}
        data = (spec.get("data") or {}).get("hash") or {}
        digest = None
        if isinstance(data, dict) and data.get("algorithm") == "sha256":
            value = str(data.get("value", ""))
            digest = "sha256:" + value if re.fullmatch(r"[0-9a-f]{64}", value) else None
        return [_pem_der(key.get("content") if isinstance(key, dict) else None)], digest
    signatures = spec.get("signatures") or []
    if isinstance(signatures, list):
        return [_pem_der(s.get("verifier")) for s in signatures if isinstance(s, dict)], None
    return [], None


class Watch:
    """The watched values of one monitor run and the trust they are checked against."""

    def __init__(
        self,
        trust: TrustMaterial,
        *,
        identities: Sequence[str] = (),
        patterns: Sequence[str] = (),
        issuer: str | None = None,
        fingerprints: Sequence[str] = (),
    ) -> None:
        self.identities = frozenset(identities)
        try:
            self.patterns = [re.compile(p) for p in patterns]
        except re.error as exc:
            raise InvalidInput(f"--identity-regexp: {exc}") from exc
        self.issuer = issuer
        self.fingerprints = frozenset(_fingerprint_arg(f) for f in fingerprints)
        if not (self.identities or self.patterns or issuer or self.fingerprints):
            raise InvalidInput("watch something: --identity, --identity-regexp, --issuer or "
                               "--key-fingerprint")
        self._trust = trust
        self._chains = ChainVerifier(trust)
        self._needles = [i.encode() for i in self.identities] or (
            [issuer.encode()] if issuer and not self.patterns else []
        )
        self._parse_all = bool(self.patterns or self.fingerprints)
        self._entry_needles = [b for n in self._needles for b in base64_needles(n)]

    def matches(self, entry: bytes, *, prefilter: bool = True) -> list[Match]:
        """The watched signers of one log entry (its canonical JSON body); [] for the rest.

        ``prefilter=False`` for Rekor v1 bodies, whose certificates are base64 of a PEM (the
        identity is not visible in the entry's bytes).
        """
        if prefilter and not self._parse_all and not any(
            n in entry for n in self._entry_needles
        ):
            return []
        try:
            body = json.loads(entry)
        except ValueError:
            return []
        if not isinstance(body, dict):
            return []
        try:  # the entry is hostile: any shape the schema does not allow is simply no match
            if body.get("apiVersion") == "0.0.1":
                signers, digest = _v1_signers(body)
            else:
                verifiers, digest = _verifiers(body)
                signers = [(_raw(v, "x509Certificate"), _raw(v, "publicKey")) for v in verifiers]
        except (AttributeError, TypeError, ValueError):
            return []
        found: list[Match] = []
        for cert_der, key_der in signers:
            match = self._match_signer(cert_der, key_der, digest)
            if match is not None:
                found.append(match)
        return found

    def _issued_by_trusted_ca(self, cert: x509.Certificate) -> bool:
        """The certificate chains to a trusted CA valid at its start; a CT precertificate (whose
        critical poison extension no path validation accepts) must be signed directly by a
        certificate of a trusted CA's chain valid then."""
        when = cert.not_valid_before_utc
        if not _is_precertificate(cert):
            try:
                self._chains.verify(cert, when)
            except Error:
                return False
            return True
        for authority in self._trust.authorities_at(when):
            for issuer in authority.certificates:
                try:
                    cert.verify_directly_issued_by(issuer)
                except (ValueError, TypeError, InvalidSignature):
                    continue
                return True
        return False

    def certificate_matches(self, cert_der: bytes) -> list[Match]:
        """A CT log entry's certificate or precertificate (DER): its match, if watched."""
        match = self._match_signer(cert_der, None, None)
        return [] if match is None else [match]

    def _match_signer(
        self, cert_der: bytes | None, key_der: bytes | None, digest: str | None
    ) -> Match | None:
        if cert_der is None:
            if key_der is None or not self.fingerprints:
                return None
            fingerprint = "sha256:" + hashlib.sha256(key_der).hexdigest()
            if fingerprint in self.fingerprints:
                return Match(None, None, digest, fingerprint)
            return None
        if not self._parse_all and not any(n in cert_der for n in self._needles):
            return None
        try:
            cert = x509.load_der_x509_certificate(cert_der)
            spki = cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        except (ValueError, TypeError):
            return None
        fingerprint = "sha256:" + hashlib.sha256(spki).hexdigest()
        try:
            issuer: str | None = certificate_issuer(cert)
        except (Error, ValueError):
            issuer = None
        try:
            names = certificate_identities(cert)
        except ValueError:  # extensions that do not parse: nobody's certificate
            return None
        identity = next((n for n in names if n in self.identities), None) or next(
            (n for n in names if any(p.fullmatch(n) for p in self.patterns)), None
        )
        by_identity = identity is not None and (self.issuer is None or issuer == self.issuer)
        by_issuer = not (self.identities or self.patterns) and self.issuer is not None and (
            issuer == self.issuer
        )
        if not (by_identity or by_issuer or fingerprint in self.fingerprints):
            return None
        if not self._issued_by_trusted_ca(cert):
            return None  # not issued by the trusted CA: not a certificate of the watched signer
        return Match(identity or (names[0] if names else None), issuer, digest, fingerprint)


def _is_precertificate(cert: x509.Certificate) -> bool:
    try:
        cert.extensions.get_extension_for_class(x509.PrecertPoison)
    except x509.ExtensionNotFound:
        return False
    return True


def _fingerprint_arg(text: str) -> str:
    value = text.strip().lower()
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
        raise InvalidInput(f"--key-fingerprint {text[:80]!r} must be sha256:<64 hex digits>")
    return value
