"""The token-replay guard: one identity token certifies at most one key.

Fulcio accepts the same identity token any number of times within its lifetime, for any key
(the question is open upstream, sigstore/fulcio issue #975). A leaked token could then be used
by someone else to get certificates for *their* keys until it expires. keyless remembers, per
token, the fingerprint of the first key it certified — ``storage.kv`` namespace ``ca-token``,
key SHA-256(token), value SHA-256(SPKI), expiring with the token — and refuses the token for any
other key. Retrying with the same key (a lost response) keeps working. Operators who need
Fulcio's behaviour switch it off (``enabled=False``).
"""

from __future__ import annotations

import hashlib

from keyless.errors import Unauthenticated
from keyless.services.ctlog.backend import KeyValue

NAMESPACE = "ca-token"
#: Remembered a little past ``exp``: the verifier accepts that much clock skew.
EXPIRY_MARGIN = 120.0


class TokenReusedError(Unauthenticated):
    """The token already certified a different key (HTTP 401)."""


class TokenReplayGuard:
    """Binds each identity token to the first public key it certifies."""

    def __init__(self, kv: KeyValue, *, enabled: bool = True) -> None:
        self._kv = kv
        self.enabled = enabled

    async def bind(self, token: str, spki_der: bytes, expires_at: float) -> None:
        """Record ``token`` → key, or raise :class:`TokenReusedError` if bound to another key."""
        if not self.enabled:
            return
        key = hashlib.sha256(token.encode()).hexdigest()
        fingerprint = hashlib.sha256(spki_der).digest()
        existing = await self._kv.put_if_absent(
            NAMESPACE, key, fingerprint, expires_at + EXPIRY_MARGIN
        )
        if existing is not None and existing != fingerprint:
            raise TokenReusedError(
                "this identity token was already used to certify a different key; "
                "request a new token (keyless binds each token to one key)"
            )
