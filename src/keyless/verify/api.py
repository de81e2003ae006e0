"""The public verifier: trust loading, ``verify_artifact`` / ``verify_attestation``.

:class:`Verifier` is :class:`keyless.verify.verifier.Verifier` (the §9 checks, unchanged) with
constructors that load trust the way ``keyless verify`` does (:mod:`keyless.trust.sources`) and
two entry points that take what a caller has at hand (paths, bytes, a parsed bundle) and return a
:class:`VerificationResult`, or raise a :class:`~keyless.errors.VerificationError` subclass.
Loading trust may raise :class:`~keyless.errors.ConfigError`; an unreadable artifact or bundle
file :class:`~keyless.errors.InvalidInput` (every one a :class:`keyless.errors.Error`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

from keyless.errors import InvalidInput
from keyless.formats.bundle import Bundle, TransparencyLogEntry
from keyless.verify import verifier as core
from keyless.verify.artifact import Artifact
from keyless.verify.errors import DSSEError
from keyless.verify.policy import Policy, certificate_identities, certificate_issuer

__all__ = ["ArtifactInput", "BundleInput", "VerificationResult", "Verifier"]

#: a bundle is a few kB (a DSSE payload maybe more); a path to ``/dev/zero`` must not eat memory
MAX_BUNDLE = 64 << 20
#: an artifact: an :class:`Artifact`, its bytes, a file path, or a ``sha256:<hex>`` digest string
ArtifactInput = Artifact | bytes | str | os.PathLike[str]
#: a bundle: parsed, its JSON as bytes, or a file path
BundleInput = Bundle | bytes | str | os.PathLike[str]
_DAY = 24 * 3600.0


class VerificationResult(core.VerificationResult):
    """What a successful verification established (the bundle, the verified certificate and
    times, and for an attestation its in-toto statement), with the usual questions answered."""

    @property
    def identity(self) -> str | None:
        """The signing certificate's identity (its first SAN); None for a managed key."""
        if self.certificate is None:
            return None
        names = certificate_identities(self.certificate)
        return names[0] if names else None

    @property
    def issuer(self) -> str | None:
        """The OIDC issuer recorded in the signing certificate; None for a managed key."""
        return None if self.certificate is None else certificate_issuer(self.certificate)

    @property
    def signed_at(self) -> datetime:
        """The earliest verified time (a trusted timestamp or a signed integrated time)."""
        return min(self.verified_times)

    @property
    def log_entries(self) -> tuple[TransparencyLogEntry, ...]:
        """The transparency log entries whose inclusion was verified."""
        return self.bundle.verification_material.tlog_entries

    @property
    def predicate_type(self) -> str | None:
        """The in-toto statement's ``predicateType`` (attestations only)."""
        value = (self.statement or {}).get("predicateType")
        return value if isinstance(value, str) else None


def as_artifact(artifact: ArtifactInput) -> Artifact:
    """Bytes are the content; a path is hashed; a str is a path, or a ``sha256:`` digest when
    no such file exists (as ``keyless verify FILE``)."""
    if isinstance(artifact, Artifact):
        return artifact
    if isinstance(artifact, bytes):
        return Artifact.from_bytes(artifact)
    if isinstance(artifact, str):
        return Artifact.from_argument(artifact)
    return Artifact.from_path(artifact)


def read_bundle(bundle: BundleInput) -> Bundle | bytes:
    """A path is read (at most :data:`MAX_BUNDLE` bytes); bytes and bundles are passed on."""
    if isinstance(bundle, Bundle | bytes):
        return bundle
    path = os.fspath(bundle)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BUNDLE + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read bundle {path!r}: {exc.strerror}") from exc
    if len(data) > MAX_BUNDLE:
        raise InvalidInput(f"bundle {path!r} is larger than {MAX_BUNDLE >> 20} MiB")
    return data


class Verifier(core.Verifier):
    """Verifies Sigstore bundles (v0.1-v0.3) against one trusted root; reuse it.

    >>> verifier = Verifier.from_trust_config("trust-config.json")   # or .production()
    >>> result = verifier.verify_artifact("a.txt", "a.txt.sigstore.json",
    ...                                   Identity(identity="me@example.com", issuer=ISSUER))
    """

    @classmethod
    def production(
        cls,
        *,
        offline: bool = False,
        tuf_cache: str | None = None,
        refresh_window: float = _DAY,
        on_warning: Callable[[str], None] | None = None,
    ) -> Verifier:
        """The public-good Sigstore instance: the trusted root shipped with keyless, refreshed
        through TUF at most once per ``refresh_window`` (never when ``offline``)."""
        from keyless.trust.sources import resolve_trust

        config = resolve_trust(
            offline=offline,
            tuf_cache=tuf_cache,
            refresh_window=refresh_window,
            on_warning=on_warning,
        )
        return cls(config.trusted_root)

    @classmethod
    def from_trust_config(cls, path: str | os.PathLike[str]) -> Verifier:
        """A ClientTrustConfig file (``keyless verify --trust-config``)."""
        from keyless.trust.sources import load_client_trust_config

        return cls(load_client_trust_config(path).trusted_root)

    @classmethod
    def from_trusted_root(cls, path: str | os.PathLike[str]) -> Verifier:
        """A ``trusted_root.json`` file."""
        from keyless.trust.sources import load_trusted_root

        return cls(load_trusted_root(path))

    @classmethod
    def for_instance(
        cls,
        url: str,
        *,
        allow_insecure_http: bool = False,
        refresh_window: float = _DAY,
        on_warning: Callable[[str], None] | None = None,
    ) -> Verifier:
        """A keyless instance, trusted through its TUF repository from the root pinned with
        ``keyless trust-instance`` (else on first use, with a warning: ``keyless verify
        --server``)."""
        from keyless.trust.sources import resolve_trust

        config = resolve_trust(
            server=url,
            allow_insecure_http=allow_insecure_http,
            refresh_window=refresh_window,
            on_warning=on_warning,
        )
        return cls(config.trusted_root)

    def verify_artifact(
        self,
        artifact: ArtifactInput,
        bundle: BundleInput,
        policy: Policy | None = None,
        *,
        key: Any = None,
    ) -> VerificationResult:
        """Verify ``bundle`` over ``artifact``: signed by an identity ``policy`` accepts (e.g.
        an :class:`~keyless.verify.policy.Identity`), or by ``key`` (a cryptography public
        key) for a managed-key bundle. A DSSE bundle passes when ``artifact`` is a subject."""
        result = self.verify(read_bundle(bundle), as_artifact(artifact), policy=policy, key=key)
        return VerificationResult(
            result.bundle,
            result.certificate,
            result.verified_times,
            result.payload_type,
            result.payload,
            result.statement,
        )

    def verify_attestation(
        self,
        artifact: ArtifactInput,
        bundle: BundleInput,
        policy: Policy | None = None,
        *,
        key: Any = None,
        predicate_type: str | None = None,
    ) -> VerificationResult:
        """Verify an in-toto attestation (a DSSE bundle) about ``artifact``: as
        :meth:`verify_artifact`, and the bundle must hold a statement with ``artifact`` as a
        subject and, if given, this ``predicate_type`` (``keyless verify-attestation``)."""
        result = self.verify_artifact(artifact, bundle, policy, key=key)
        if result.payload_type is None:
            raise DSSEError("the bundle holds a message signature, not an attestation")
        predicate = (result.statement or {}).get("predicateType")
        if predicate_type is not None and predicate != predicate_type:
            raise DSSEError(
                f"the statement's predicateType is {predicate!r}, not {predicate_type!r}"
            )
        return result
