"""The public signer: trust loading, ``sign_file`` / ``sign_bytes`` / ``attest``.

:class:`Signer` is :class:`keyless.sign.signer.Signer` (the signing flow, unchanged) with
constructors that load trust the way ``keyless sign`` does (:mod:`keyless.trust.sources`) and
entry points that return a :class:`SigningResult`. Failures raise :class:`keyless.errors.Error`
subclasses: :class:`~keyless.sign.signer.SigningError` when a service refuses or fails,
:class:`~keyless.errors.ConfigError` for unusable trust, :class:`~keyless.errors.InvalidInput`
for an unreadable file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from cryptography import x509

from keyless.errors import ConfigError
from keyless.formats.bundle import Bundle, TransparencyLogEntry
from keyless.formats.trustroot import ClientTrustConfig
from keyless.sign import signer as core
from keyless.sign.statement import statement_for

__all__ = ["Signer", "SigningResult"]

_DAY = 24 * 3600.0


@dataclass(frozen=True)
class SigningResult:
    """A signed bundle (write it with :meth:`write` or ``bundle.to_bytes()``) and what it says."""

    bundle: Bundle

    @cached_property
    def certificate(self) -> x509.Certificate:
        """The short-lived signing certificate the CA issued."""
        return x509.load_der_x509_certificate(self.bundle.verification_material.certificates[0])

    @property
    def identity(self) -> str | None:
        """The identity the certificate names (its first SAN)."""
        from keyless.verify.policy import certificate_identities

        names = certificate_identities(self.certificate)
        return names[0] if names else None

    @property
    def issuer(self) -> str:
        """The OIDC issuer the certificate records."""
        from keyless.verify.policy import certificate_issuer

        return certificate_issuer(self.certificate)

    @property
    def log_entry(self) -> TransparencyLogEntry:
        """The transparency log entry that records the signature."""
        return self.bundle.verification_material.tlog_entries[0]

    @property
    def timestamps(self) -> int:
        """How many RFC 3161 timestamps the bundle carries."""
        return len(self.bundle.verification_material.rfc3161_timestamps)

    @property
    def not_after(self) -> datetime:
        """The end of the signing certificate's validity."""
        return self.certificate.not_valid_after_utc

    def to_bytes(self) -> bytes:
        """The bundle as JSON (v0.3)."""
        return self.bundle.to_bytes()

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the bundle to ``path`` (replacing it), e.g. ``FILE.sigstore.json``."""
        with open(path, "wb") as f:
            f.write(self.to_bytes())


def _token(identity_token: Any) -> str:
    """A raw JWT from a str or a :class:`keyless.oidc.IdentityToken`."""
    raw = getattr(identity_token, "raw", identity_token)
    if not isinstance(raw, str) or not raw:
        raise ConfigError("an identity token (a JWT string) is required to sign")
    return raw


class Signer(core.Signer):
    """Signs files, bytes and in-toto attestations with one ephemeral key and certificate.

    >>> signer = Signer.from_trust_config("trust-config.json", identity_token=token)
    >>> signer.sign_file("a.txt").write("a.txt.sigstore.json")
    """

    @classmethod
    def from_client_trust_config(
        cls,
        config: ClientTrustConfig,
        *,
        identity_token: Any,
        rekor_version: int | None = None,
        http: Any = None,
    ) -> Signer:
        """Signing services from a trust config's signing config (ConfigError without one)."""
        if config.signing_config is None:
            raise ConfigError("the trust config has no signing config")
        services = core.SigningServices.from_config(
            config.signing_config, rekor_version=rekor_version
        )
        return cls(
            trusted_root=config.trusted_root,
            services=services,
            identity_token=_token(identity_token),
            http=http,
        )

    @classmethod
    def from_trust_config(
        cls,
        path: str | os.PathLike[str],
        *,
        identity_token: Any,
        rekor_version: int | None = None,
    ) -> Signer:
        """A ClientTrustConfig file with a signing config (``keyless sign --trust-config``)."""
        from keyless.trust.sources import load_client_trust_config

        return cls.from_client_trust_config(
            load_client_trust_config(path),
            identity_token=identity_token,
            rekor_version=rekor_version,
        )

    @classmethod
    def for_instance(
        cls,
        url: str,
        *,
        identity_token: Any,
        rekor_version: int | None = None,
        allow_insecure_http: bool = False,
        refresh_window: float = _DAY,
        on_warning: Callable[[str], None] | None = None,
    ) -> Signer:
        """A keyless instance, trusted through its TUF repository (``keyless sign --server``)."""
        from keyless.trust.sources import resolve_trust

        config = resolve_trust(
            server=url,
            allow_insecure_http=allow_insecure_http,
            refresh_window=refresh_window,
            on_warning=on_warning,
        )
        return cls.from_client_trust_config(
            config, identity_token=identity_token, rekor_version=rekor_version
        )

    @classmethod
    def production(
        cls,
        *,
        identity_token: Any,
        tuf_cache: str | None = None,
        refresh_window: float = _DAY,
        on_warning: Callable[[str], None] | None = None,
    ) -> Signer:
        """The public-good Sigstore instance (its signing config comes through TUF)."""
        from keyless.trust.sources import resolve_trust

        config = resolve_trust(
            tuf_cache=tuf_cache, refresh_window=refresh_window, on_warning=on_warning
        )
        if config.signing_config is None:
            raise ConfigError(
                "no signing config for the public-good instance is available (the TUF refresh "
                "did not provide one)"
            )
        return cls.from_client_trust_config(config, identity_token=identity_token)

    def sign_file(self, path: str | os.PathLike[str]) -> SigningResult:
        """Sign a file (hashed in chunks: it may be large)."""
        (bundle,) = core.sign_files(self, [os.fspath(path)])
        return SigningResult(bundle)

    def sign_bytes(self, data: bytes) -> SigningResult:
        """Sign bytes in memory."""
        return SigningResult(self.sign_artifact(data))

    def attest(
        self, path: str | os.PathLike[str], predicate_type: str, predicate: Any
    ) -> SigningResult:
        """Sign an in-toto Statement v1 about a file with this predicate, as a DSSE bundle
        (``keyless attest``; check it with ``Verifier.verify_attestation``)."""
        return SigningResult(self.sign_statement(statement_for(path, predicate_type, predicate)))
