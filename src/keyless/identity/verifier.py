"""Verify an OpenID Connect identity token the way Fulcio does, and say whom it names.

protocols.md §1.3: pick the issuer configuration from the (unverified) ``iss``, verify the JWS
with the issuer's published keys (OIDC Core §3.1.3.7 steps 2-10: ``iss`` equality, ``aud``
contains the client id, signature, ``exp``/``iat``), then apply the issuer type's identity rule.
Every refusal is a :class:`~keyless.errors.Unauthenticated` naming what failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import httpx
import jwt

from keyless.errors import Unauthenticated, shown
from keyless.identity.compact import decode_compact_jws, token_id
from keyless.identity.config import IssuerConfig, IssuerType, find_issuer
from keyless.identity.jwks import ALLOWED_ALGORITHMS, JwksCache, LocalJwks
from keyless.identity.principals import SanType, certificate_issuer, principal_for

#: Tokens larger than this are refused before any parsing (a JWT is a few KiB at most).
MAX_TOKEN_BYTES = 16 * 1024


@dataclass(frozen=True)
class Identity:
    """Whom a verified token names, in the terms the CA needs to issue a certificate.

    ``issuer`` is what goes into the certificate's issuer extensions (``iss`` unless the issuer
    config names an ``issuer_claim``); ``san_type`` "username" means an OtherName SAN
    (OID 1.3.6.1.4.1.57264.1.7, value ``user!domain``). ``pop_subject`` is the string the proof
    of possession is signed over (protocols.md §1.2). ``expires_at`` (the token's ``exp``) bounds
    how long a replay guard must remember the token. ``token_id`` is what the token means, equal
    for every encoding of one token (:func:`keyless.identity.compact.token_id`): what a replay
    guard keys on.
    """

    issuer: str
    subject_alternative_name: str
    san_type: SanType
    issuer_type: IssuerType
    claims: Mapping[str, Any]
    pop_subject: str
    expires_at: int
    token_id: str

    @property
    def token_issuer(self) -> str:
        """The token's own ``iss`` claim (the issuer whose keys signed it)."""
        return str(self.claims["iss"])


class IdentityVerifier:
    """Verifies identity tokens from any configured issuer (exact URL or meta-issuer pattern).

    ``local_jwks`` maps an issuer URL to a callable returning its JWKS, bypassing discovery over
    HTTP — for the embedded provider served by the same process.
    """

    def __init__(
        self,
        issuers: Iterable[IssuerConfig],
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
        *,
        leeway: float = 60.0,
        local_jwks: Mapping[str, LocalJwks] | None = None,
        jwks_ttl: float = 300.0,
        min_refresh_interval: float = 10.0,
    ) -> None:
        self._issuers = tuple(issuers)
        self._clock = clock
        self._leeway = leeway
        self._keys = JwksCache(
            http,
            clock,
            ttl=jwks_ttl,
            min_refresh_interval=min_refresh_interval,
            local=local_jwks,
        )

    @property
    def issuers(self) -> tuple[IssuerConfig, ...]:
        """The trusted issuer configurations (for ``GET /api/v2/configuration``)."""
        return self._issuers

    async def verify(self, token: str) -> Identity:
        """Verify ``token`` and return the identity it proves; raises :class:`Unauthenticated`.

        ``token`` must be a strict compact JWS (:func:`keyless.identity.compact.normalize_token`
        strips surrounding whitespace where a token enters; here it is refused).
        """
        if not isinstance(token, str) or not token:
            raise Unauthenticated("no identity token was supplied")
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthenticated(f"identity token is larger than {MAX_TOKEN_BYTES} bytes")
        # Decoded once here for the header and the issuer; PyJWT then verifies the token itself
        # (signature, aud, iss, required claims) in one call. Each PyJWT parse checks every
        # character in Python, and the four this replaced cost ~0.1 ms per certificate.
        jws = decode_compact_jws(token)
        header, unverified = jws.header, jws.claims
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            raise Unauthenticated(
                f"identity token algorithm {shown(alg)} is not allowed "
                f"(accepted: {', '.join(sorted(ALLOWED_ALGORITHMS))})"
            )
        if "crit" in header:
            raise Unauthenticated(
                "identity token has critical header parameters (RFC 7515 §4.1.11)"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("identity token 'kid' header must be a string")
        iss = unverified.get("iss")
        if not isinstance(iss, str) or not iss:
            raise Unauthenticated("identity token has no 'iss' claim")
        config = find_issuer(self._issuers, iss)
        if config is None:
            raise Unauthenticated(f"identity token issuer {iss!r} is not trusted by this CA")

        keys = await self._keys.key(iss, kid, alg)
        claims = self._check_signature(token, keys, alg, config, iss)
        self._check_times(claims)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthenticated("identity token has no 'sub' claim (OIDC Core §2)")
        principal = principal_for(claims, config)
        return Identity(
            issuer=certificate_issuer(claims, config),
            subject_alternative_name=principal.subject_alternative_name,
            san_type=principal.san_type,
            issuer_type=config.type,
            claims=MappingProxyType(claims),
            pop_subject=principal.pop_subject,
            expires_at=int(claims["exp"]),
            token_id=token_id(claims, jws.signing_input),
        )

    def _check_signature(
        self, token: str, keys: list[jwt.PyJWK], alg: str, config: IssuerConfig, iss: str
    ) -> dict[str, Any]:
        last: Exception | None = None
        for key in keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key=key,
                    algorithms=[alg],
                    audience=config.client_id,
                    issuer=iss,
                    options={
                        # Times are checked against the injected clock below.
                        "verify_exp": False,
                        "verify_iat": False,
                        "verify_nbf": False,
                        "require": ["iss", "sub", "aud", "exp", "iat"],
                    },
                )
                return claims
            except jwt.InvalidSignatureError as exc:
                last = exc
                continue
            except jwt.MissingRequiredClaimError as exc:
                raise Unauthenticated(f"identity token has no {exc.claim!r} claim") from exc
            except jwt.InvalidAudienceError as exc:
                raise Unauthenticated(
                    f"identity token audience does not contain the client id {config.client_id!r}"
                ) from exc
            except jwt.InvalidIssuerError as exc:
                raise Unauthenticated(f"identity token issuer mismatch: {exc}") from exc
            except jwt.PyJWTError as exc:
                raise Unauthenticated(f"identity token is invalid: {exc}") from exc
        raise Unauthenticated(
            f"identity token signature does not verify with the keys of issuer {iss}"
        ) from last

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        values: dict[str, float] = {}
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise Unauthenticated(f"identity token {name!r} claim must be a number")
            values[name] = float(value)
        if now > values["exp"] + self._leeway:
            raise Unauthenticated(
                f"identity token expired at {int(values['exp'])} (now {int(now)})"
            )
        if values["iat"] > now + self._leeway:
            raise Unauthenticated("identity token was issued in the future (iat); check clocks")
        if "nbf" in values and values["nbf"] > now + self._leeway:
            raise Unauthenticated("identity token is not yet valid (nbf); check clocks")
