"""Identity tokens from configured OpenID Connect issuers, verified as Fulcio does.

The CA calls :meth:`IdentityVerifier.verify` on every signing request and issues a certificate
for the returned :class:`Identity` (protocols.md §1.2-§1.4).
"""

from __future__ import annotations

from keyless.identity.compact import normalize_token, parse_compact_jws, token_id
from keyless.identity.config import ISSUER_TYPES, IssuerConfig, IssuerType, find_issuer
from keyless.identity.jwks import ALLOWED_ALGORITHMS, JwksCache
from keyless.identity.principals import SanType
from keyless.identity.verifier import Identity, IdentityVerifier

__all__ = [
    "ALLOWED_ALGORITHMS",
    "ISSUER_TYPES",
    "Identity",
    "IdentityVerifier",
    "IssuerConfig",
    "IssuerType",
    "JwksCache",
    "SanType",
    "find_issuer",
    "normalize_token",
    "parse_compact_jws",
    "token_id",
]
