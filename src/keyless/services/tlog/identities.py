"""Which certificates' identities the search index believes (issue #13 defect 6).

Rekor logs any certificate a signature verifies with, including a self-signed one carrying
someone else's e-mail SAN and this instance's OIDC-issuer extension. Indexing its identity would
let anyone plant entries under ``email=alice@…``. So identity keys (``email:``, ``uri:``,
``identity:``) are derived only from certificates that chain to a certificate authority of this
instance's trusted root; every entry stays findable by artifact digest and key fingerprint.

The check is RFC 5280 path validation (``cryptography.x509.verification``) to the trusted CA
certificates, at a moment inside the leaf's own validity: Sigstore leaves live ten minutes, and
the index is rebuilt from the log long after they expired. The leaf profile itself is not
judged (any EKU; the verifier does that); only the issuing chain is.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

_CA_POLICY = ExtensionPolicy.webpki_defaults_ca().may_be_present(
    x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None  # Sigstore CAs are codeSigning
)
_EE_POLICY = ExtensionPolicy.permit_all()


class TrustedIssuers:
    """The CA certificates (roots and intermediates) of this instance's trusted root."""

    def __init__(self, certificates: Sequence[x509.Certificate]) -> None:
        # What does not depend on the certificate judged (store, extension policies) is built
        # once; the validation time is the leaf's own, so each check finishes its own verifier.
        # Nothing about a verification's outcome is kept.
        self._policy = (
            PolicyBuilder()
            .store(Store(list(certificates)))
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
            if certificates else None
        )

    def vouches_for(self, cert: x509.Certificate) -> bool:
        """Whether ``cert`` was issued under one of the trusted CAs (never raises)."""
        if self._policy is None:
            return False
        try:
            self._policy.time(cert.not_valid_before_utc).build_client_verifier().verify(cert, [])
        except (VerificationError, ValueError, TypeError, x509.UnsupportedGeneralNameType):
            return False
        return True
