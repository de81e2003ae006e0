"""The provider's ID-token signing keys, rotated by epoch without coordination.

Time is cut into epochs of ``rotation_period`` seconds. The key of epoch *n* is created by
whichever process first needs it, through ``kv.put_if_absent`` (every other process reads the
same key back), and signs every token issued during epoch *n*. The JWKS publishes the keys of
epochs *n-1*, *n* and *n+1*: the previous key until every token it signed has expired (the
period is at least the token lifetime), and the next key ahead of its first use, so that
relying parties which cached the JWKS know it before it signs anything (OIDC Core §10.1.1).

Private keys are stored as PKCS#8 PEM wrapped under the instance's key-encryption key
(:class:`keyless.sealing.SealedKv`; ``keyless serve`` always passes its ``sealer``), so that
reading the database or a backup of it does not let anyone mint tokens. Without a sealer (a
process-local memory store in tests) the PEM is kept as it is.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.errors import ConfigError, StorageError
from keyless.sealing import SealedKv, Sealer
from keyless.storage.seam import KeyValue

NAMESPACE = "oidc-keys"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The RFC 7517/7518 §6.2 JWK of a P-256 key, with its RFC 7638 thumbprint as ``kid``."""
    numbers = key.public_numbers()
    members = {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    kid = _b64(hashlib.sha256(canonical).digest())
    return {**members, "kid": kid, "use": "sig", "alg": "ES256"}


class SigningKey:
    """One ES256 key of the ring with its JWK."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        self.private_key = private_key
        self.jwk = public_jwk(private_key.public_key())
        self.kid = self.jwk["kid"]


class OidcKeyRing:
    """Epoch-rotated ES256 signing keys shared through a :class:`KeyValue`."""

    def __init__(
        self,
        kv: KeyValue,
        clock: Callable[[], float] = time.time,
        *,
        rotation_period: float = 86400.0,
        token_lifetime: float = 600.0,
        sealer: Sealer | None = None,
    ) -> None:
        if rotation_period < token_lifetime:
            raise ConfigError(
                "OIDC key rotation period must be at least the token lifetime "
                f"({rotation_period} < {token_lifetime})"
            )
        self._kv: KeyValue = kv if sealer is None else SealedKv(kv, sealer)
        self._clock = clock
        self._period = rotation_period
        self._lifetime = token_lifetime
        self._keys: dict[int, SigningKey] = {}

    def _epoch(self) -> int:
        return int(self._clock() // self._period)

    async def _key(self, epoch: int) -> SigningKey:
        cached = self._keys.get(epoch)
        if cached is not None:
            return cached
        fresh = ec.generate_private_key(ec.SECP256R1())
        pem = fresh.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Kept until every token of the epoch after it has expired, plus a day of margin.
        expires_at = (epoch + 3) * self._period + self._lifetime + 86400
        existing = await self._kv.put_if_absent(NAMESPACE, f"epoch/{epoch}", pem, expires_at)
        if existing is not None:
            loaded = serialization.load_pem_private_key(existing, password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise StorageError(f"stored OIDC key of epoch {epoch} is not an EC key")
            fresh = loaded
        key = SigningKey(fresh)
        self._keys[epoch] = key
        for old in [e for e in self._keys if e < epoch - 2]:
            del self._keys[old]
        return key

    async def signing_key(self) -> SigningKey:
        """The key that signs tokens issued now."""
        return await self._key(self._epoch())

    async def jwks(self) -> dict[str, Any]:
        """The published JWK Set (RFC 7517 §5): previous, current and next epoch keys."""
        epoch = self._epoch()
        keys = [await self._key(e) for e in (epoch, epoch + 1, epoch - 1)]
        return {"keys": [k.jwk for k in keys]}
