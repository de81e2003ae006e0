"""The bundle verifier (protocols.md §9; sigstore-python ``sigstore/verify/verifier.py``).

Order of the checks, each raising a specific :mod:`keyless.verify.errors` class:

0. bundle shape: exactly one tlog entry of a supported kind; keyless vs managed-key material;
1. verified times: RFC 3161 tokens from trusted TSAs, plus the integrated time when a SET binds
   it (Rekor v1 kinds only); at least ``threshold`` of them;
2. certificate chain to a trusted CA at every verified time (no bundle-supplied root);
3. exactly one embedded SCT from a trusted CT log;
4. Fulcio profile and the identity policy;
5. inclusion proof, checkpoint signed by a trusted log valid at the signing time, SET;
6. every verified time within the leaf's validity;
7. message signature over the artifact digest, or DSSE signature over PAE plus the in-toto
   statement's subject digest;
8. the log entry body rebuilt from the bundle and compared.

Managed-key bundles (``publicKey`` material, conformance ``--key``) skip steps 2-4 and 6 and use
the given key instead of a certificate.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from keyless.errors import InvalidInput, shown
from keyless.formats.bundle import Bundle, TransparencyLogEntry
from keyless.formats.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope
from keyless.formats.trustroot import TrustedRoot
from keyless.keys import hash_for_curve, spki_der
from keyless.trust.material import TrustMaterial
from keyless.verify import entries
from keyless.verify.artifact import Artifact
from keyless.verify.certificate import (
    ChainVerifier,
    check_profile,
    foreign_certificate_error,
    reject_bundled_roots,
    verify_embedded_sct,
)
from keyless.verify.errors import (
    ArtifactMismatchError,
    CertificateChainError,
    CertificateExpiredAtSigningError,
    DSSEError,
    IdentityMismatchError,
    KeyMismatchError,
    LogEntryMismatchError,
    MalformedBundleError,
    NotEnoughVerifiedTimesError,
    SignatureMismatchError,
)
from keyless.verify.policy import Policy
from keyless.verify.timestamps import TimestampVerifier
from keyless.verify.tlog import is_rekor_v2, trusted_logs, verify_entry

__all__ = [
    "STATEMENT_TYPES",
    "SUPPORTED_ENTRIES",
    "VerificationResult",
    "Verifier",
    "check_subject",
    "in_toto_statement",
    "integrated_time",
    "load_bundle",
]

#: in-toto Statement types accepted in DSSE payloads.
STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")
SUPPORTED_ENTRIES = {
    ("hashedrekord", "0.0.1"),
    ("hashedrekord", "0.0.2"),
    ("dsse", "0.0.1"),
    ("dsse", "0.0.2"),
    ("intoto", "0.0.2"),
}
_PREHASH = {"SHA2_256": hashes.SHA256, "SHA2_384": hashes.SHA384, "SHA2_512": hashes.SHA512}


@dataclass(frozen=True)
class VerificationResult:
    """What a successful verification established."""

    bundle: Bundle
    certificate: x509.Certificate | None
    verified_times: tuple[datetime, ...]
    payload_type: str | None = None
    payload: bytes | None = None
    statement: dict[str, Any] | None = field(default=None, compare=False)


def integrated_time(entry: TransparencyLogEntry) -> datetime:
    """The entry's ``integratedTime`` as a UTC datetime; out of range is a malformed bundle."""
    try:
        return datetime.fromtimestamp(entry.integrated_time, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise MalformedBundleError(
            f"the log entry's integratedTime {entry.integrated_time} is out of range"
        ) from exc


def load_bundle(data: bytes | str | Bundle) -> Bundle:
    """Parse a bundle, turning format errors into :class:`MalformedBundleError`."""
    if isinstance(data, Bundle):
        return data
    try:
        return Bundle.from_json(data)
    except InvalidInput as exc:
        raise MalformedBundleError(f"malformed bundle: {exc}") from exc


class Verifier:
    """Verifies bundles against one trusted root; reuse it to amortise trust decoding."""

    def __init__(self, trust: TrustedRoot | TrustMaterial, *, threshold: int = 1) -> None:
        self.trust = trust if isinstance(trust, TrustMaterial) else TrustMaterial(trust)
        self.threshold = threshold
        self._chains = ChainVerifier(self.trust)
        self._timestamps = TimestampVerifier(self.trust)

    # --- public API -------------------------------------------------------------------------

    def verify(
        self,
        bundle: Bundle | bytes | str,
        artifact: Artifact | None,
        *,
        policy: Policy | None = None,
        key: Any = None,
    ) -> VerificationResult:
        """Verify a message-signature or DSSE bundle over ``artifact`` (protocols.md §9).

        Give ``policy`` for keyless bundles or ``key`` (a cryptography public key) for
        managed-key bundles. For DSSE bundles ``artifact`` must be a subject of the in-toto
        statement; pass ``None`` to check only the envelope (then read ``result.payload``).
        """
        b = load_bundle(bundle)
        entry = self._single_entry(b)
        cert, signing_key = self._signing_key(b, policy, key)

        try:
            times = self._verified_times(b, entry)
        except NotEnoughVerifiedTimesError:
            if cert is not None and not self._chains.issued_by_trusted_ca(cert):
                raise foreign_certificate_error(cert) from None
            raise
        if cert is not None:
            assert policy is not None
            self._verify_certificate(b, cert, times, policy)
        log_times = [integrated_time(entry)] if self._set_backed(entry) else times
        logs = trusted_logs(self.trust, entry, log_times)
        verify_entry(entry, logs, require_set=b.version == "0.1")
        if cert is not None:
            for t in times:
                if not cert.not_valid_before_utc <= t <= cert.not_valid_after_utc:
                    raise CertificateExpiredAtSigningError(
                        f"verified time {t.isoformat()} is outside the signing certificate's "
                        "validity"
                    )
        cert_der = b.verification_material.certificates[0] if cert is not None else None
        key_der = (
            cert_der
            if cert_der is not None
            else spki_der(signing_key)
        )
        if b.message_signature is not None:
            if artifact is None:
                raise ArtifactMismatchError("a message-signature bundle needs the artifact")
            self._verify_message(
                b, entry, artifact, key=signing_key, key_der=key_der, cert_der=cert_der
            )
            return VerificationResult(b, cert, tuple(times))
        assert b.dsse_envelope is not None
        statement = self._verify_dsse(
            b, entry, artifact, key=signing_key, key_der=key_der, cert_der=cert_der
        )
        return VerificationResult(
            b,
            cert,
            tuple(times),
            b.dsse_envelope.payload_type,
            b.dsse_envelope.payload,
            statement,
        )

    # --- steps ------------------------------------------------------------------------------

    @staticmethod
    def _single_entry(b: Bundle) -> TransparencyLogEntry:
        entries_ = b.verification_material.tlog_entries
        if len(entries_) != 1:
            raise MalformedBundleError(
                f"a bundle must hold exactly one transparency log entry, not {len(entries_)}"
            )
        entry = entries_[0]
        if (entry.kind, entry.version) not in SUPPORTED_ENTRIES:
            raise MalformedBundleError(
                f"unsupported transparency log entry kind {shown(entry.kind)} "
                f"version {shown(entry.version)}"
            )
        if b.dsse_envelope is not None and len(b.dsse_envelope.signatures) != 1:
            raise DSSEError("a bundle's DSSE envelope must have exactly one signature")
        return entry

    @staticmethod
    def _signing_key(
        b: Bundle, policy: Policy | None, key: Any
    ) -> tuple[x509.Certificate | None, Any]:
        material = b.verification_material
        if key is not None:
            if material.certificates:
                raise KeyMismatchError("a keyless bundle cannot be verified with a managed key")
            return None, key
        if not material.certificates:
            raise KeyMismatchError("a managed-key bundle can only be verified with its key")
        if policy is None:
            raise IdentityMismatchError("keyless verification needs an identity policy")
        try:
            certs = [x509.load_der_x509_certificate(c) for c in material.certificates]
        except ValueError as exc:
            raise MalformedBundleError("the bundle's certificate is not valid DER") from exc
        reject_bundled_roots(certs)
        try:
            return certs[0], certs[0].public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise MalformedBundleError(
                "the signing certificate's public key cannot be decoded"
            ) from exc

    @staticmethod
    def _set_backed(entry: TransparencyLogEntry) -> bool:
        """The integrated time counts only when a SET signs it (Rekor v1 kinds, §9 step 1)."""
        return (
            entry.inclusion_promise is not None
            and entry.integrated_time > 0
            and not is_rekor_v2(entry)
        )

    def _verified_times(self, b: Bundle, entry: TransparencyLogEntry) -> list[datetime]:
        times = self._timestamps.verified_times(
            b.verification_material.rfc3161_timestamps, b.signature
        )
        if self._set_backed(entry):
            times.append(integrated_time(entry))
        if len(times) < self.threshold:
            raise NotEnoughVerifiedTimesError(
                f"the bundle has {len(times)} verified time(s); {self.threshold} required "
                "(no trusted RFC 3161 timestamp or signed entry timestamp)"
            )
        return times

    def _verify_certificate(
        self, b: Bundle, cert: x509.Certificate, times: list[datetime], policy: Policy
    ) -> None:
        chain: list[x509.Certificate] = []
        for t in times:
            try:
                chain = self._chains.verify(cert, t)
            except CertificateChainError:
                if not self._chains.issued_by_trusted_ca(cert):
                    raise foreign_certificate_error(cert) from None
                raise
        verify_embedded_sct(cert, chain[1], self.trust)
        check_profile(cert)
        policy.verify(cert)

    def _verify_message(
        self,
        b: Bundle,
        entry: TransparencyLogEntry,
        artifact: Artifact,
        *,
        key: Any,
        key_der: bytes,
        cert_der: bytes | None,
    ) -> None:
        ms = b.message_signature
        assert ms is not None
        algorithm = "SHA2_256"
        if ms.message_digest is not None:
            algorithm = ms.message_digest.algorithm
            if algorithm != "SHA2_256":
                raise ArtifactMismatchError(
                    f"unsupported message digest algorithm {shown(algorithm)}"
                )
            if ms.message_digest.digest != artifact.sha256:
                raise ArtifactMismatchError("the artifact's digest differs from the bundle's")
        digest = artifact.sha256
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(ms.signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
            elif isinstance(key, rsa.RSAPublicKey):
                key.verify(ms.signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
            else:
                raise SignatureMismatchError(
                    f"{type(key).__name__} keys cannot verify a message digest"
                )
        except InvalidSignature as exc:
            raise SignatureMismatchError("the signature does not verify over the artifact") from exc
        body = entries.parse_body(entry.canonicalized_body)
        if entry.kind != "hashedrekord":
            raise LogEntryMismatchError(
                f"a message signature must be logged as hashedrekord, not {entry.kind}"
            )
        if entry.version == "0.0.1":
            entries.check_hashedrekord_v001(body, ms.signature, algorithm, digest, key_der)
        else:
            entries.check_hashedrekord_v002(body, ms.signature, digest, key, cert_der)

    def _verify_dsse(
        self,
        b: Bundle,
        entry: TransparencyLogEntry,
        artifact: Artifact | None,
        *,
        key: Any,
        key_der: bytes,
        cert_der: bytes | None,
    ) -> dict[str, Any] | None:
        envelope = b.dsse_envelope
        assert envelope is not None
        signature = envelope.signatures[0].sig
        pae = envelope.pae()
        _verify_pae(key, signature, pae)
        body = entries.parse_body(entry.canonicalized_body)
        kind = (entry.kind, entry.version)
        if kind == ("dsse", "0.0.1"):
            entries.check_dsse_v001(body, envelope, key_der)
        elif kind == ("dsse", "0.0.2"):
            entries.check_dsse_v002(body, envelope, key, cert_der)
        elif kind == ("intoto", "0.0.2"):
            entries.check_intoto_v002(body, envelope, key_der)
        elif kind == ("hashedrekord", "0.0.2"):
            entries.check_hashedrekord_v002(
                body, signature, hashlib.sha256(pae).digest(), key, cert_der
            )
        else:
            raise LogEntryMismatchError(f"a DSSE envelope cannot be logged as {kind[0]} {kind[1]}")
        if artifact is None:
            return None
        statement = in_toto_statement(envelope)
        check_subject(statement, artifact)
        return statement


def _verify_pae(key: Any, signature: bytes, pae: bytes) -> None:
    """DSSE signature over PAE (protocols.md §9 step 7)."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, pae, ec.ECDSA(hash_for_curve(key.curve)))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, pae, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, pae)
        else:
            raise SignatureMismatchError(f"unsupported key type {type(key).__name__}")
    except InvalidSignature as exc:
        raise SignatureMismatchError("the DSSE signature does not verify over PAE") from exc


def in_toto_statement(envelope: Envelope) -> dict[str, Any]:
    """The envelope's in-toto Statement (payloadType ``application/vnd.in-toto+json``)."""
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise DSSEError(f"DSSE payload type {shown(envelope.payload_type)} is not in-toto")
    try:
        statement = json.loads(envelope.payload)
    except (ValueError, RecursionError) as exc:
        raise DSSEError("the DSSE payload is not JSON") from exc
    if not isinstance(statement, dict) or statement.get("_type") not in STATEMENT_TYPES:
        raise DSSEError("the DSSE payload is not an in-toto Statement")
    if not isinstance(statement.get("subject"), list):
        raise DSSEError("the in-toto Statement has no subject list")
    return statement


def check_subject(statement: dict[str, Any], artifact: Artifact) -> None:
    """The artifact must be one of the statement's subjects (by ``digest.sha256``)."""
    wanted = artifact.sha256.hex()
    for subject in statement["subject"]:
        if not isinstance(subject, dict):
            continue
        digest = subject.get("digest")
        if isinstance(digest, dict) and str(digest.get("sha256", "")).lower() == wanted:
            return
    raise ArtifactMismatchError("the artifact is not a subject of the in-toto statement")
