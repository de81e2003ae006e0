"""The embedded OpenID Connect provider (issuer ``<public-url>/oidc``; contracts.md §3).

``OidcProvider(issuer, users=[OidcUser.parse("alice@example.com:s3cret")], kv=storage.kv)``;
mount ``keyless.services.oidc.routes.routes(provider)`` under ``/oidc`` and give the CA
``provider.issuer_configs()`` and ``provider.local_jwks()``.
"""

from __future__ import annotations

from keyless.services.oidc.accounts import (
    OidcClient,
    OidcUser,
    hash_secret,
    machine_client,
    verify_secret,
)
from keyless.services.oidc.keyring import OidcKeyRing
from keyless.services.oidc.kv import MemoryKV
from keyless.services.oidc.ratelimit import LoginLimiter
from keyless.services.oidc.service import OidcProvider

__all__ = [
    "LoginLimiter",
    "MemoryKV",
    "OidcClient",
    "OidcKeyRing",
    "OidcProvider",
    "OidcUser",
    "hash_secret",
    "machine_client",
    "verify_secret",
]
