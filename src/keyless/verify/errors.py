"""The specific verification failures (protocols.md §9); each names the step that failed.

Every check in :mod:`keyless.verify` raises one of these (never returns a bool), so callers and the
CLI can tell *what* failed: ``keyless verify`` prints ``str(error)`` as its one sentence.
Failures detected by the pure layers keep their own classes, which are also
:class:`~keyless.errors.VerificationError` subclasses: ``keyless.merkle.InclusionProofError``,
``keyless.formats.sct.SCTError``, ``keyless.formats.note.CheckpointError`` (re-exported
here: the checkpoint is malformed, unsigned by the log, or does not match the proof).
"""

from __future__ import annotations

from keyless.errors import VerificationError
from keyless.formats.note import CheckpointError

__all__ = [
    "ArtifactMismatchError",
    "CertificateChainError",
    "CertificateExpiredAtSigningError",
    "CertificateProfileError",
    "CheckpointError",
    "DSSEError",
    "EmbeddedSCTError",
    "IdentityMismatchError",
    "InclusionPromiseError",
    "KeyMismatchError",
    "LogEntryMismatchError",
    "MalformedBundleError",
    "MissingInclusionProofError",
    "NotEnoughVerifiedTimesError",
    "SignatureMismatchError",
    "TimestampError",
    "TrustRootError",
    "UntrustedLogError",
]


class MalformedBundleError(VerificationError):
    """The bundle cannot be read or breaks a structural rule (protocols.md §6, §9 "Bundle load")."""


class TrustRootError(VerificationError):
    """The trusted root is unusable for this bundle (malformed, or no matching authority)."""


class CertificateChainError(VerificationError):
    """The signing certificate does not chain to a trusted CA valid at a verified time."""


class CertificateProfileError(VerificationError):
    """The signing certificate lacks KeyUsage digitalSignature / EKU codeSigning (§9 step 4)."""


class EmbeddedSCTError(VerificationError):
    """The certificate's embedded SCT is missing, duplicated or not from a trusted CT log."""


class IdentityMismatchError(VerificationError):
    """The certificate's SAN, OIDC issuer or workflow claims differ from the policy (§9 step 4)."""


class TimestampError(VerificationError):
    """An RFC 3161 timestamp is malformed or the bundle's timestamps are unacceptable (§8)."""


class NotEnoughVerifiedTimesError(VerificationError):
    """Fewer verified times (TSA tokens, SET-backed integrated time) than required (§9 step 1)."""


class CertificateExpiredAtSigningError(VerificationError):
    """A verified time lies outside the signing certificate's validity (§9 step 6)."""


class UntrustedLogError(VerificationError):
    """The tlog entry's log ID names no trusted transparency log valid at the signing time."""


class MissingInclusionProofError(VerificationError):
    """The tlog entry has no inclusion proof with a checkpoint (offline verification needs it)."""


class InclusionPromiseError(VerificationError):
    """The signed entry timestamp (SET) is missing where required or does not verify (§3.2)."""


class LogEntryMismatchError(VerificationError):
    """The tlog entry body differs from the one rebuilt from the bundle (§9 step 8)."""


class ArtifactMismatchError(VerificationError):
    """The artifact's digest differs from the bundle's message digest or statement subjects."""


class SignatureMismatchError(VerificationError):
    """The message or DSSE signature does not verify with the signing key (§9 step 7)."""


class DSSEError(VerificationError):
    """The DSSE envelope or its in-toto statement is unacceptable (§9 step 7)."""


class KeyMismatchError(VerificationError):
    """A managed-key bundle was verified without ``--key``, or a keyless one with it."""
