"""The token-replay guard: one identity token certifies at most one key.

Fulcio accepts the same identity token any number of times within its lifetime, for any key
(the question is open upstream, sigstore/fulcio issue #975). A leaked token could then be used
by someone else to get certificates for *their* keys until it expires. keyless binds each token
to the first key it certifies and refuses it for any other key; retrying with the same key (a
lost response) returns a certificate for the precertificate already logged.

The guard keys on what the token *means*, not on its text: several strings verify as one token
(surrounding whitespace, and for ECDSA the signature (r, n - s) next to (r, s)), and each would
otherwise certify one more key. The key is :attr:`keyless.identity.Identity.token_id`, computed
by the verifier from the verified claims: issuer + ``jti`` when the token has one, else issuer +
subject + ``iat`` + the JWS signing input (header.payload, without the malleable signature).
The token itself is normalised once where it enters (:func:`keyless.identity.normalize_token`,
called by the CA's request parsing), and the verifier accepts only the strict compact form.

The binding is stored where it costs nothing extra and can never disagree with what was issued:
the precertificate's CT log entry is appended under the dedup key SHA-256("keyless-ca-token-id" ‖
0x00 ‖ token_id) (``keyless.log.TransparencyLog.add(dedup_key=…)``), in the same durable batch
commit as the entry itself. A second request with the token finds that entry; its public key
decides between "retry" and "replay". Bindings therefore outlive the token (harmless: an expired
token is refused anyway) and hold across restarts and across processes sharing one database.
Operators who need Fulcio's behaviour switch the guard off (``enabled=False``): entries are then
keyed by leaf hash.
"""

from __future__ import annotations

import hashlib

from keyless.errors import Unauthenticated
from keyless.identity import Identity

_DOMAIN = b"keyless-ca-token-id\x00"


class TokenReusedError(Unauthenticated):
    """The token already certified a different key (HTTP 401)."""


class TokenReplayGuard:
    """Decides how CA log entries are keyed: by identity token (guard on) or by leaf (off)."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled

    def dedup_key(self, identity: Identity) -> bytes | None:
        """The CT log dedup key binding the verified token to its first key (None: disabled)."""
        if not self.enabled:
            return None
        return hashlib.sha256(_DOMAIN + identity.token_id.encode()).digest()

    @staticmethod
    def refuse() -> TokenReusedError:
        return TokenReusedError(
            "this identity token was already used to certify a different key; "
            "request a new token (keyless binds each token to one key)"
        )
