"""Verify Sigstore bundles from Python (protocols.md §9): the public API of keyless's verifier.

::

    from keyless.verify import Identity, Verifier, VerificationError

    verifier = Verifier.from_trust_config("trust-config.json")  # .production(), .for_instance(URL)
    policy = Identity(identity="alice@example.com", issuer="https://accounts.example.com")
    result = verifier.verify_artifact("a.txt", "a.txt.sigstore.json", policy)
    print(result.identity, result.issuer, result.signed_at)

Every failure raises a :class:`VerificationError` subclass naming the check that failed (loading
trust: :class:`~keyless.errors.ConfigError`; all are :class:`keyless.errors.Error`). The names in
``__all__`` are the supported API; the submodules are internal (docs/internal-apis.md). Names are
imported on first use (PEP 562), so ``import keyless.verify`` costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keyless._lazy import lazy_exports
from keyless.verify.errors import __all__ as _error_names

if TYPE_CHECKING:
    from keyless.errors import VerificationError
    from keyless.formats.sct import SCTError
    from keyless.merkle import InclusionProofError
    from keyless.verify.api import VerificationResult, Verifier
    from keyless.verify.artifact import Artifact
    from keyless.verify.errors import (
        ArtifactMismatchError,
        CertificateChainError,
        CertificateExpiredAtSigningError,
        CertificateProfileError,
        CheckpointError,
        DSSEError,
        EmbeddedSCTError,
        IdentityMismatchError,
        InclusionPromiseError,
        KeyMismatchError,
        LogEntryMismatchError,
        MalformedBundleError,
        MissingInclusionProofError,
        NotEnoughVerifiedTimesError,
        SignatureMismatchError,
        TimestampError,
        TrustRootError,
        UntrustedLogError,
    )
    from keyless.verify.policy import AllOf, GitHubWorkflow, Identity, Policy

#: the verification errors, by name (keyless.verify.errors is light: stdlib and keyless.errors)
_ERRORS = tuple(_error_names)

#: public name -> the module that defines it
_HOME: dict[str, str] = {
    "Verifier": "keyless.verify.api",
    "VerificationResult": "keyless.verify.api",
    "Artifact": "keyless.verify.artifact",
    "Identity": "keyless.verify.policy",
    "GitHubWorkflow": "keyless.verify.policy",
    "AllOf": "keyless.verify.policy",
    "Policy": "keyless.verify.policy",
    "VerificationError": "keyless.errors",
    "InclusionProofError": "keyless.merkle",
    "SCTError": "keyless.formats.sct",
    **dict.fromkeys(_ERRORS, "keyless.verify.errors"),
}

__all__ = [
    "AllOf",
    "Artifact",
    "ArtifactMismatchError",
    "CertificateChainError",
    "CertificateExpiredAtSigningError",
    "CertificateProfileError",
    "CheckpointError",
    "DSSEError",
    "EmbeddedSCTError",
    "GitHubWorkflow",
    "Identity",
    "IdentityMismatchError",
    "InclusionPromiseError",
    "InclusionProofError",
    "KeyMismatchError",
    "LogEntryMismatchError",
    "MalformedBundleError",
    "MissingInclusionProofError",
    "NotEnoughVerifiedTimesError",
    "Policy",
    "SCTError",
    "SignatureMismatchError",
    "TimestampError",
    "TrustRootError",
    "UntrustedLogError",
    "VerificationError",
    "VerificationResult",
    "Verifier",
]


__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__)
