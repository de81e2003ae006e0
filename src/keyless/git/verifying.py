"""Verify a git signature offline: CMS shape, payload digest, then keyless's bundle checks.

The CMS (:mod:`keyless.git.cms`) is turned into the Sigstore bundle it stands for — a message
signature over ``sha256(signedAttrs)`` with the leaf, the embedded log entry and the RFC 3161
timestamps — and :class:`keyless.verify.Verifier` runs every check it runs for ``keyless
verify``: the chain to a trusted CA at the verified signing time (the log's integrated time or a
trusted timestamp, never "now": an expired certificate is fine if it was valid when the log
recorded the signature), the embedded SCT, the inclusion proof and signed checkpoint, the log
entry body against the signature, and the signature itself. The message-digest attribute binds
the signed attributes to the commit or tag payload. No network is used, and a signature without
an embedded log entry is refused (there is no online fallback).

The identity is checked afterwards and separately, so that a valid signature by somebody else
is reported as such (:class:`Outcome`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from keyless.errors import InvalidInput

__all__ = [
    "PreparedSignature",
    "VerifiedSignature",
    "fingerprint",
    "prepare",
    "verify_prepared",
    "verify_signature",
]


class _AnySigner:
    """The identity is checked by the caller (:func:`verify_signature`'s ``policy``)."""

    def verify(self, cert: x509.Certificate) -> None:
        return None


def fingerprint(cert: x509.Certificate) -> str:
    """The certificate's SHA-1 fingerprint in upper-case hex (as gpgsm and gitsign print it)."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - an identifier only


@dataclass(frozen=True)
class VerifiedSignature:
    """A cryptographically valid signature, and whether its signer is the one expected."""

    certificate: x509.Certificate
    identity: str
    issuer: str
    signed_at: datetime
    log_index: int
    #: None: no expectation was given; else whether the policy accepted the signer
    identity_ok: bool | None
    identity_problem: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.certificate)


@dataclass(frozen=True)
class PreparedSignature:
    """A git signature read and tied to its payload: the bundle it stands for, not yet verified."""

    bundle: Any
    artifact: Any
    log_index: int
    certificate_der: bytes


def prepare(signature: bytes, payload: bytes) -> PreparedSignature:
    """Read ``signature`` (armored or DER), check it covers ``payload`` and carries a log entry,
    and build its bundle. Offline and cheap: done before any trust is loaded."""
    from keyless.formats.bundle import (
        BUNDLE_V03_NEW,
        Bundle,
        HashOutput,
        MessageSignature,
        VerificationMaterial,
    )
    from keyless.git import cms, tlogpb
    from keyless.verify import Artifact
    from keyless.verify.errors import (
        ArtifactMismatchError,
        MalformedBundleError,
        MissingInclusionProofError,
    )

    try:
        parsed = cms.parse(cms.dearmor(signature))
    except InvalidInput as exc:
        raise MalformedBundleError(str(exc)) from exc
    if parsed.message_digest != hashlib.sha256(payload).digest():
        raise ArtifactMismatchError(
            "the signature was made over other content: the commit or tag changed after signing"
        )
    if parsed.log_entry is None:
        raise MissingInclusionProofError(
            "the signature carries no transparency log entry (made by another tool, or "
            "stripped); keyless verifies git signatures offline only"
        )
    try:
        entry = tlogpb.decode_entry(parsed.log_entry)
    except InvalidInput as exc:
        raise MalformedBundleError(f"the embedded log entry is malformed: {exc}") from exc
    digest = parsed.signed_attrs_digest
    bundle = Bundle(
        media_type=BUNDLE_V03_NEW,
        verification_material=VerificationMaterial(
            certificates=(parsed.certificate_der,),
            tlog_entries=(entry,),
            rfc3161_timestamps=parsed.timestamps,
        ),
        message_signature=MessageSignature(parsed.signature, HashOutput("SHA2_256", digest)),
    )
    return PreparedSignature(
        bundle, Artifact(digest, "git signature"), entry.log_index, parsed.certificate_der
    )


def verify_prepared(
    verifier: Any, prepared: PreparedSignature, policy: Any = None
) -> VerifiedSignature:
    """Run the verifier's checks; raise a :class:`~keyless.errors.VerificationError` if the
    signature is not valid. ``policy`` (e.g. :class:`keyless.verify.Identity`) decides
    ``identity_ok`` (None without one)."""
    from keyless.verify.errors import IdentityMismatchError

    result = verifier.verify_artifact(prepared.artifact, prepared.bundle, _AnySigner())
    cert = result.certificate
    identity_ok: bool | None = None
    problem = ""
    if policy is not None:
        try:
            policy.verify(cert)
            identity_ok = True
        except IdentityMismatchError as exc:
            identity_ok, problem = False, str(exc)
    return VerifiedSignature(
        certificate=cert,
        identity=result.identity or "",
        issuer=result.issuer or "",
        signed_at=result.signed_at,
        log_index=prepared.log_index,
        identity_ok=identity_ok,
        identity_problem=problem,
    )


def verify_signature(
    verifier: Any, signature: bytes, payload: bytes, policy: Any = None
) -> VerifiedSignature:
    """:func:`prepare` then :func:`verify_prepared`."""
    return verify_prepared(verifier, prepare(signature, payload), policy)
