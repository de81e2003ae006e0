"""One trusted timestamp authority, and whether a signed timestamp comes from it.

The checks are those sigstore-python 4.5.1 makes through rfc3161-client (``verify_message``),
which in turn follow sigstore/timestamp-authority's ``VerifyTimestampResponse``:

1. PKIStatus is granted (RFC 3161 §2.4.2), and the SignedData has exactly one SignerInfo;
2. the signer is the trusted TSA certificate: the SignerInfo's ``sid`` names it, and when the
   token embeds certificates, the one that ``sid`` names is byte-for-byte the trusted one;
3. the CMS signature (RFC 5652 §5.4-5.6): the signed attributes carry contentType id-ct-TSTInfo
   and the messageDigest of the TSTInfo, and the TSA key's signature over them verifies;
4. the TSA certificate has the critical id-kp-timeStamping EKU (RFC 3161 §2.3) and chains through
   the trusted intermediates to the trusted root, every certificate valid at ``genTime``;
5. the message imprint is the hash of the bundle's signature bytes.

What never changes between tokens is done once, when the authority is loaded: the chain's
signatures, CA flags and the EKU (step 4 except the validity windows). Per token this leaves one
signature verification and two hashes, where rfc3161-client rebuilds an OpenSSL store and
re-verifies the whole chain every time (about 1.5 ms more per bundle; see bench/verify.py).
``tests/unit/formats/test_tstoken.py`` holds this module to rfc3161-client's verdicts on real and
altered tokens.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from keyless.formats.tstoken import DIGESTS, GRANTED, ID_CT_TST_INFO, SignedTimestamp
from keyless.trust.material import Authority

__all__ = [
    "HASHES",
    "TimestampMismatch",
    "TrustedTimestampAuthority",
    "chain_problem",
]

_Hash = tuple[Callable[[bytes], Any], type[hashes.HashAlgorithm]]

_ALGORITHMS: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
#: Digest algorithms of message imprints and SignerInfos by OID (RFC 5754 §2).
HASHES: Final[dict[bytes, _Hash]] = {
    oid: (getattr(hashlib, name), _ALGORITHMS[name]) for oid, name in DIGESTS.items()
}


class TimestampMismatch(Exception):
    """The timestamp does not verify against this authority; the message says why."""


def chain_problem(certificates: tuple[x509.Certificate, ...]) -> str | None:
    """Why a trusted-root TSA chain cannot vouch for any timestamp, or None when it can."""
    if len(certificates) < 2:
        return "a TSA chain needs its leaf and a root"  # sigstore-python skips such entries
    leaf = certificates[0]
    try:
        for cert in certificates:
            unknown = [
                e.oid.dotted_string
                for e in cert.extensions
                if e.critical and isinstance(e.value, x509.UnrecognizedExtension)
            ]
            if unknown:
                return f"a TSA chain certificate has unknown critical extensions {unknown}"
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return "the TSA certificate has no ExtendedKeyUsage"
    except (ValueError, TypeError) as exc:
        return f"a TSA chain certificate's extensions are malformed: {exc}"
    # OpenSSL's timestamp-signing purpose, as rfc3161-client applies it: the one critical EKU
    # id-kp-timeStamping (RFC 3161 §2.3), and a KeyUsage, if any, of signing bits only.
    if not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        return "the TSA certificate's EKU is not exactly the critical id-kp-timeStamping"
    usage = _key_usage(leaf)
    if usage is not None and (
        not (usage.digital_signature or usage.content_commitment)
        or usage.key_encipherment
        or usage.data_encipherment
        or usage.key_agreement
        or usage.key_cert_sign
        or usage.crl_sign
    ):
        return "the TSA certificate's KeyUsage does not allow signing timestamps"
    for child, parent in itertools.pairwise(certificates):
        try:
            constraints = parent.extensions.get_extension_for_class(x509.BasicConstraints).value
        except (x509.ExtensionNotFound, ValueError):
            return f"{parent.subject.rfc4514_string()} is not a CA certificate"
        if not constraints.ca:
            return f"{parent.subject.rfc4514_string()} is not a CA certificate"
        parent_usage = _key_usage(parent)
        if parent_usage is not None and not parent_usage.key_cert_sign:
            return f"{parent.subject.rfc4514_string()} may not sign certificates (KeyUsage)"
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            return f"{child.subject.rfc4514_string()} is not issued by the next certificate"
    return None


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _same_name(a: bytes, b: bytes) -> bool:
    """RFC 5280 §7.1 name comparison, for the rare signer whose encoding differs from the cert's."""
    if a == b:
        return True
    from asn1crypto import x509 as asn1_x509

    try:
        return bool(asn1_x509.Name.load(a, strict=True) == asn1_x509.Name.load(b, strict=True))
    except Exception:  # asn1crypto raises TypeError or ValueError on odd attribute values
        return False


class TrustedTimestampAuthority:
    """A TSA of the trusted root, with everything that does not depend on a token precomputed."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority
        certs = authority.certificates
        self.problem = chain_problem(certs)
        self._leaf_der = authority.entry.cert_chain[0] if certs else b""
        self._windows = tuple((c.not_valid_before_utc, c.not_valid_after_utc) for c in certs)
        if self.problem is None:
            leaf = certs[0]
            try:
                self._key: Any = leaf.public_key()
                self._issuer = leaf.issuer.public_bytes()
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                self.problem = f"the TSA certificate cannot be used: {exc}"
            self._serial = leaf.serial_number

    def verify(self, ts: SignedTimestamp, message: bytes) -> datetime:
        """``genTime`` when ``ts`` is this TSA's timestamp over ``message``."""
        if self.problem is not None:
            raise TimestampMismatch(self.problem)
        if ts.status != GRANTED:
            raise TimestampMismatch(f"the timestamp's status is {ts.status}, not granted (0)")
        if ts.signer_count != 1:
            raise TimestampMismatch(f"the timestamp has {ts.signer_count} signers, not one")
        self._check_signer(ts)
        self._check_signature(ts)
        imprint_hash = HASHES.get(ts.imprint_algorithm)
        if imprint_hash is None:
            raise TimestampMismatch("the message imprint uses an unsupported hash algorithm")
        if imprint_hash[0](message).digest() != ts.imprint:
            raise TimestampMismatch("the timestamp is over a different signature")
        when = ts.gen_time
        for not_before, not_after in self._windows:
            if not not_before <= when <= not_after:
                raise TimestampMismatch("the TSA's chain is not valid at the timestamp's genTime")
        return when

    def _names_signer(self, ts: SignedTimestamp) -> bool:
        return ts.signer_serial == self._serial and _same_name(ts.signer_issuer, self._issuer)

    def _check_signer(self, ts: SignedTimestamp) -> None:
        if not self._names_signer(ts):
            raise TimestampMismatch("the timestamp's signer is not this TSA's certificate")
        for der in ts.certificates:
            if der == self._leaf_der:
                return
            try:
                embedded = x509.load_der_x509_certificate(der)
                names_signer = embedded.serial_number == ts.signer_serial and _same_name(
                    embedded.issuer.public_bytes(), ts.signer_issuer
                )
            except (ValueError, TypeError, x509.InvalidVersion) as exc:
                # rfc3161-client parses every embedded certificate and refuses the token
                raise TimestampMismatch("the timestamp embeds an unreadable certificate") from exc
            if names_signer:
                raise TimestampMismatch("the embedded signer certificate is not the trusted one")
        if ts.certificates:
            raise TimestampMismatch("no embedded certificate matches the timestamp's signer")

    def _check_signature(self, ts: SignedTimestamp) -> None:
        digest = HASHES.get(ts.digest_algorithm)
        if digest is None:
            raise TimestampMismatch("the SignerInfo uses an unsupported digest algorithm")
        if ts.content_type != ID_CT_TST_INFO:
            raise TimestampMismatch("the signed contentType attribute is not id-ct-TSTInfo")
        if ts.message_digest != digest[0](ts.tst_info).digest():
            raise TimestampMismatch("the signed messageDigest does not match the TSTInfo")
        # The scheme follows the trusted key, as OpenSSL's PKCS7_verify does (rfc3161-client): the
        # unsigned signatureAlgorithm field cannot select anything weaker.
        key = self._key
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(ts.signature, ts.signed_attributes, ec.ECDSA(digest[1]()))
            elif isinstance(key, rsa.RSAPublicKey):
                key.verify(ts.signature, ts.signed_attributes, padding.PKCS1v15(), digest[1]())
            else:
                raise TimestampMismatch("the TSA's key type cannot sign timestamps here")
        except InvalidSignature as exc:
            raise TimestampMismatch("the timestamp's signature does not verify") from exc
