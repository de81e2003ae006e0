"""The signing certificate: chain, embedded SCT and Sigstore profile (protocols.md §9 steps 2-4).

* **Chain** (§9 step 2, §7): built by cryptography's WebPKI path builder with the EKU check relaxed
  (Fulcio leaves carry codeSigning, checked separately), exactly as sigstore-python does. The store
  holds only certificates of trusted-root CAs whose ``validFor`` contains the verified time
  (conformance ``intoto-expired-certificate_fail``); intermediates supplied by a bundle are never
  used (interop.md §5 item 6), and a bundle chain that carries a self-signed root is rejected
  (``bundle-with-root-cert_fail``).
* **SCT** (§2, §9 step 3): exactly one embedded precertificate SCT, from a trusted CT log whose
  key is valid at the SCT's time, over the TBS without the SCT list and the issuer's key hash.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from keyless.errors import shown
from keyless.formats import sct as sct_format
from keyless.keys import spki_der
from keyless.trust.material import LogKey, TrustMaterial
from keyless.verify.errors import CertificateChainError, CertificateProfileError, EmbeddedSCTError

__all__ = [
    "ChainVerifier",
    "check_profile",
    "reject_bundled_roots",
    "verify_embedded_sct",
]

_policies: tuple[Any, Any] | None = None


def _extension_policies() -> tuple[Any, Any]:
    global _policies  # noqa: PLW0603 - built once: cryptography policies are immutable
    if _policies is None:
        from cryptography.x509.verification import Criticality, ExtensionPolicy

        ca = ExtensionPolicy.webpki_defaults_ca().may_be_present(
            x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
        )
        ee = ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
        )
        _policies = (ca, ee)
    return _policies


class ChainVerifier:
    """Builds chains to the trusted CAs; caches one store per set of CAs valid at a time."""

    def __init__(self, trust: TrustMaterial) -> None:
        self._trust = trust
        self._stores: dict[tuple[int, ...], Any] = {}

    def verify(self, leaf: x509.Certificate, when: datetime) -> list[x509.Certificate]:
        """The chain ``[leaf, intermediate…, root]`` valid at ``when``, or CertificateChainError."""
        from cryptography.x509.verification import PolicyBuilder, Store
        from cryptography.x509.verification import VerificationError as X509Error

        cas = [
            i
            for i, ca in enumerate(self._trust.certificate_authorities)
            if ca.valid_for.contains(when)
        ]
        if not cas:
            raise CertificateChainError(
                f"no trusted certificate authority is valid at {when.isoformat()}"
            )
        key = tuple(cas)
        store = self._stores.get(key)
        if store is None:
            certs: dict[bytes, x509.Certificate] = {}
            for i in cas:
                ca = self._trust.certificate_authorities[i]
                for der, cert in zip(ca.entry.cert_chain, ca.certificates, strict=True):
                    certs.setdefault(der, cert)
            store = self._stores[key] = Store(list(certs.values()))
        ca_policy, ee_policy = _extension_policies()
        verifier = (
            PolicyBuilder()
            .store(store)
            .time(when.astimezone(UTC).replace(tzinfo=None))
            .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
            .build_client_verifier()
        )
        try:
            chain: list[x509.Certificate] = verifier.verify(leaf, []).chain
        except (X509Error, x509.UnsupportedGeneralNameType, ValueError) as exc:
            raise CertificateChainError(
                f"the signing certificate does not chain to a trusted CA at "
                f"{when.isoformat()}: {exc}"
            ) from exc
        return chain


    def issued_by_trusted_ca(self, leaf: x509.Certificate) -> bool:
        """Whether a certificate of any trusted CA (at any time) signed ``leaf``; False means
        the bundle comes from another instance (a clearer error than a failed chain)."""
        for ca in self._trust.certificate_authorities:
            for cert in ca.certificates:
                try:
                    leaf.verify_directly_issued_by(cert)
                except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                    continue
                return True
        return False


def foreign_certificate_error(leaf: x509.Certificate) -> CertificateChainError:
    """The error for a leaf no trusted CA issued: the bundle was made by another instance."""
    try:
        issuer = leaf.issuer.rfc4514_string()
    except ValueError:
        issuer = "?"
    return CertificateChainError(
        "this bundle's certificate chains to no CA in the trusted root in use: it was issued "
        f"by {shown(issuer)}; was it signed with another Sigstore instance? Verify with that "
        "instance's trusted root"
    )


def reject_bundled_roots(certificates: list[x509.Certificate]) -> None:
    """A bundle's chain must not carry a (self-signed) root: trust comes from the trusted root."""
    for cert in certificates[1:]:
        try:
            self_issued = cert.subject == cert.issuer
        except (TypeError, ValueError) as exc:
            raise CertificateChainError(
                "a certificate in the bundle's chain has a malformed name"
            ) from exc
        if self_issued:
            raise CertificateChainError("the bundle's certificate chain includes a root CA")


def check_profile(cert: x509.Certificate) -> None:
    """KeyUsage digitalSignature and EKU codeSigning (Fulcio profile, protocols.md §1.4)."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise CertificateProfileError(
            "the signing certificate lacks KeyUsage or ExtendedKeyUsage"
        ) from exc
    if not usage.digital_signature:
        raise CertificateProfileError("the signing certificate's KeyUsage lacks digitalSignature")
    if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise CertificateProfileError("the signing certificate's EKU lacks codeSigning")


#: SHA-256 of issuer SPKIs; issuers are trusted-root CA certificates, so this stays tiny.
_issuer_hashes: dict[x509.Certificate, bytes] = {}


def _issuer_key_hash(issuer: x509.Certificate) -> bytes:
    """RFC 6962 §3.2 ``issuer_key_hash`` (cached: it is the same for every leaf of a CA)."""
    cached = _issuer_hashes.get(issuer)
    if cached is None:
        cached = hashlib.sha256(spki_der(issuer.public_key())).digest()
        if len(_issuer_hashes) < 256:
            _issuer_hashes[issuer] = cached
    return cached


#: RFC 6962 log IDs of trusted CT keys, by the key's DER (trusted roots hold only a few).
_key_log_ids: dict[bytes, bytes] = {}


def _key_log_id(log: LogKey) -> bytes:
    """SHA-256 of the CT log key's SPKI, computed once per trusted key (RFC 6962 §3.2)."""
    cached = _key_log_ids.get(log.instance.public_key)
    if cached is None:
        cached = sct_format.log_id_for(log.key)
        if len(_key_log_ids) < 256:
            _key_log_ids[log.instance.public_key] = cached
    return cached


def verify_embedded_sct(
    leaf: x509.Certificate, issuer: x509.Certificate, trust: TrustMaterial
) -> None:
    """Exactly one embedded SCT by a trusted CT log valid at its timestamp (RFC 6962 §3.2)."""
    try:
        ext = leaf.extensions.get_extension_for_oid(
            ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS
        )
    except x509.ExtensionNotFound as exc:
        raise EmbeddedSCTError("the signing certificate has no embedded SCT") from exc
    except ValueError as exc:
        problem = f"the signing certificate's extensions are malformed: {exc}"
        raise EmbeddedSCTError(problem) from exc
    raw = ext.value.public_bytes()
    try:
        scts = sct_format.decode_sct_list(raw)
    except sct_format.SCTError as exc:
        raise EmbeddedSCTError(f"the embedded SCT list is malformed: {exc}") from exc
    if len(scts) != 1:
        raise EmbeddedSCTError(f"expected exactly one embedded SCT, found {len(scts)}")
    sct = scts[0]
    logs = trust.ctlogs_for(sct.log_id)
    if not logs:
        raise EmbeddedSCTError("the embedded SCT is not from a trusted CT log")
    try:
        when = datetime.fromtimestamp(sct.timestamp_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise EmbeddedSCTError(
            f"the embedded SCT's timestamp {sct.timestamp_ms} ms is out of range"
        ) from exc
    logs = [log for log in logs if log.valid_for.contains(when)]
    if not logs:
        raise EmbeddedSCTError("the CT log's key was not valid at the SCT's timestamp")
    signed = sct_format.precert_signed_data(
        sct, _issuer_key_hash(issuer), leaf.tbs_precertificate_bytes
    )
    last: sct_format.SCTError | None = None
    for log in logs:
        try:
            sct_format.verify_sct(sct, signed, log.key, key_log_id=_key_log_id(log))
            return
        except sct_format.SCTError as exc:
            last = exc
    raise EmbeddedSCTError(f"the embedded SCT does not verify: {last}")
