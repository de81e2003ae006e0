"""Minting the provider's ES256 identity tokens.

ID Token claims per OpenID Connect Core §2 (``iss``, ``sub``, ``aud``, ``exp``, ``iat``,
``auth_time``, ``nonce``) plus ``email``/``email_verified`` (§5.1), which Sigstore CAs certify
(contracts.md §3). The same JWT is handed out as ``access_token`` because sigstore-python takes
the identity token from there (interop.md §5 item 12).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from keyless.services.oidc.keyring import OidcKeyRing


class TokenMinter:
    """Signs identity tokens with the current key of an :class:`OidcKeyRing`."""

    def __init__(
        self, keys: OidcKeyRing, clock: Callable[[], float] = time.time, lifetime: int = 600
    ) -> None:
        self._keys = keys
        self._clock = clock
        self.lifetime = lifetime

    async def mint(self, issuer: str, audience: str, subject: str, **extra: Any) -> str:
        """A signed JWT for ``subject``; ``None`` values in ``extra`` are left out."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime,
            "jti": secrets.token_urlsafe(16),
        }
        claims.update({k: v for k, v in extra.items() if v is not None})
        key = await self._keys.signing_key()
        return jwt.encode(
            claims, key.private_key, algorithm="ES256", headers={"kid": key.kid, "typ": "JWT"}
        )

    def response(self, token: str, scope: str) -> Mapping[str, Any]:
        """The RFC 6749 §5.1 token response (the JWT as both id_token and access_token)."""
        return {
            "access_token": token,
            "id_token": token,
            "token_type": "Bearer",
            "expires_in": self.lifetime,
            "scope": scope,
        }
