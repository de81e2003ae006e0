"""Issuer signing keys through OpenID Connect Discovery and JWKS, cached with rotation support.

OpenID Connect Discovery 1.0 §4 names the ``jwks_uri``; the discovery document's ``issuer`` must
equal the issuer URL exactly (§4.3). Keys (RFC 7517) are cached for ``ttl`` seconds; a token whose
``kid`` is unknown triggers a refetch (the issuer may have rotated, OIDC Core §10.1.1), at most
once per ``min_refresh_interval`` per issuer so that forged ``kid`` values cannot make the CA
hammer an issuer. If a refresh fails for a transient reason, keys fetched within ``stale_limit``
seconds keep being used.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from keyless.errors import Unauthenticated, Unavailable, shown

#: Signature algorithms accepted in identity tokens (RFC 7518 §3.1): asymmetric only — never
#: ``none`` and never the HMAC family, whose "key" a public JWKS would hand to forgers.
ALLOWED_ALGORITHMS: frozenset[str] = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

_EC_CURVE_ALG = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
MAX_DOCUMENT_BYTES = 512 * 1024
MAX_ISSUERS = 1024
#: Parsed key objects kept (:class:`JwksCache` ``_parsed``); the table is emptied when full.
MAX_PARSED_KEYS = 4096

#: Returns an issuer's JWK Set directly (sync or async), e.g. the embedded provider's key ring.
LocalJwks = Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]


@dataclass
class _IssuerKeys:
    jwks_uri: str | None = None
    algorithms: frozenset[str] | None = None  # id_token_signing_alg_values_supported
    keys: list[dict[str, Any]] = field(default_factory=list)
    #: (id of a dict in ``keys``, alg) → its parsed key; emptied whenever ``keys`` is replaced
    #: (``keys`` keeps the dicts alive, and nothing changes them: they are the fetched JSON)
    parsed: dict[tuple[int, str], jwt.PyJWK | None] = field(default_factory=dict)
    fetched_at: float = float("-inf")
    failed_at: float = float("-inf")
    failure: Exception | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def key_matches_alg(jwk: Mapping[str, Any], alg: str) -> bool:
    """Whether a JWK may verify ``alg`` (RFC 7517 §4.1 ``kty``, §4.2 ``use``, §4.4 ``alg``)."""
    if jwk.get("use", "sig") != "sig":
        return False
    if "alg" in jwk and jwk["alg"] != alg:
        return False
    kty = jwk.get("kty")
    if kty == "EC":
        return _EC_CURVE_ALG.get(str(jwk.get("crv"))) == alg
    if kty == "RSA":
        return alg[:2] in ("RS", "PS")
    if kty == "OKP":
        return jwk.get("crv") == "Ed25519" and alg == "EdDSA"
    return False


class JwksCache:
    """Signing keys of many issuers, fetched over ``http`` and refreshed on rotation."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
        *,
        ttl: float = 300.0,
        min_refresh_interval: float = 10.0,
        stale_limit: float = 86400.0,
        local: Mapping[str, LocalJwks] | None = None,
    ) -> None:
        self._http = http
        self._clock = clock
        self._ttl = ttl
        self._min_refresh = min_refresh_interval
        self._stale_limit = stale_limit
        self._local = dict(local or {})
        self._issuers: dict[str, _IssuerKeys] = {}
        #: (JWK as canonical JSON, alg) → its PyJWK, or None when it is unusable. Key objects
        #: are immutable functions of the published JWK, so they are made once (from_jwk costs
        #: ~50 µs, with the curve point check) instead of per token; nothing about a token is
        #: remembered. Keyed by content, a rotated or changed key is a new entry.
        self._parsed: dict[tuple[str, str], jwt.PyJWK | None] = {}

    async def key(self, issuer: str, kid: str | None, alg: str) -> list[jwt.PyJWK]:
        """The candidate keys of ``issuer`` for a token signed with ``alg`` under ``kid``.

        Raises :class:`Unauthenticated` when the issuer publishes no such key even after a
        (rate-limited) refresh, :class:`Unavailable` when the issuer cannot be reached at all.
        """
        if issuer in self._local:
            jwks = self._local[issuer]()
            if inspect.isawaitable(jwks):
                jwks = await jwks
            return self._select(issuer, list(jwks.get("keys", [])), kid, alg)
        state = self._issuers.get(issuer)
        if state is None:
            if len(self._issuers) >= MAX_ISSUERS:
                # Meta-issuer patterns admit unboundedly many issuers: forget the stalest.
                stalest = min(self._issuers, key=lambda i: self._issuers[i].fetched_at)
                del self._issuers[stalest]
            state = self._issuers[issuer] = _IssuerKeys()
        async with state.lock:
            now = self._clock()
            expired = now - state.fetched_at >= self._ttl
            rotated = (
                kid is not None
                and not any(k.get("kid") == kid for k in state.keys)
                and now - state.fetched_at >= self._min_refresh
            )
            if (expired or rotated) and now - state.failed_at < self._min_refresh:
                # A failing issuer is asked again only after the refresh interval.
                if not state.keys and state.failure is not None:
                    raise state.failure
            elif expired or rotated:
                try:
                    await self._refresh(issuer, state)
                except (Unauthenticated, Unavailable) as exc:
                    state.failed_at, state.failure = now, exc
                    raise
            if state.algorithms is not None and alg not in state.algorithms:
                raise Unauthenticated(
                    f"identity token algorithm {alg} is not among those issuer {issuer} "
                    "announces (id_token_signing_alg_values_supported)"
                )
            return self._select(issuer, state.keys, kid, alg, state.parsed)

    def _select(
        self, issuer: str, keys: Sequence[Mapping[str, Any]], kid: str | None, alg: str,
        parsed: dict[tuple[int, str], jwt.PyJWK | None] | None = None,
    ) -> list[jwt.PyJWK]:  # fmt: skip
        candidates = [k for k in keys if kid is None or k.get("kid") == kid]
        if not candidates:
            raise Unauthenticated(
                f"identity token key id {kid!r} is unknown to issuer {issuer} (not in its JWKS)"
            )
        usable = [k for k in candidates if key_matches_alg(k, alg)]
        if not usable:
            raise Unauthenticated(
                f"issuer {issuer} publishes no key for algorithm {alg}"
                + (f" with key id {kid!r}" if kid else "")
            )
        out = []
        for jwk in usable:
            if parsed is None:  # a local JWKS: its dicts may be reused for other contents
                key = self._parse(jwk, alg)
            elif (slot := (id(jwk), alg)) in parsed:
                key = parsed[slot]
            else:
                key = parsed[slot] = self._parse(jwk, alg)
            if key is not None:
                out.append(key)
        if not out:
            raise Unauthenticated(f"issuer {issuer} publishes no usable key for {alg}")
        return out

    def _parse(self, jwk: Mapping[str, Any], alg: str) -> jwt.PyJWK | None:
        """The key object of ``jwk`` for ``alg`` (None: unusable), made once per content."""
        try:
            cache_key = (json.dumps(jwk, sort_keys=True, separators=(",", ":")), alg)
        except (TypeError, ValueError):  # not JSON data (a local JWKS callable's own objects)
            cache_key = None
        if cache_key is not None and cache_key in self._parsed:
            return self._parsed[cache_key]
        key: jwt.PyJWK | None
        try:
            key = jwt.PyJWK(dict(jwk), algorithm=alg)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
            key = None
        if cache_key is not None:
            if len(self._parsed) >= MAX_PARSED_KEYS:
                self._parsed.clear()
            self._parsed[cache_key] = key
        return key

    async def _refresh(self, issuer: str, state: _IssuerKeys) -> None:
        now = self._clock()
        try:
            discovery = await self._get_json(
                issuer.rstrip("/") + "/.well-known/openid-configuration", "discovery document"
            )
            named = discovery.get("issuer")
            if named != issuer:
                raise Unauthenticated(
                    f"discovery document of {issuer} names issuer {shown(named)}; "
                    "it must be identical (OpenID Connect Discovery §4.3)"
                )
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                raise Unauthenticated(f"discovery document of {issuer} has no valid jwks_uri")
            algs = discovery.get("id_token_signing_alg_values_supported")
            jwks = await self._get_json(jwks_uri, "JWKS")
            keys = jwks.get("keys")
            if not isinstance(keys, list):
                raise Unauthenticated(f"JWKS of {issuer} has no 'keys' list (RFC 7517 §5)")
        except Unavailable:
            if state.keys and now - state.fetched_at < self._stale_limit:
                state.failed_at = now
                return  # keep serving the keys we have while the issuer is unreachable
            raise
        state.jwks_uri = jwks_uri
        state.algorithms = (
            frozenset(a for a in algs if isinstance(a, str)) if isinstance(algs, list) else None
        )
        state.keys = [k for k in keys if isinstance(k, dict)]
        state.parsed = {}
        state.fetched_at = now

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with self._http.stream(
                "GET", url, headers={"Accept": "application/json"}, follow_redirects=False
            ) as response:
                if response.status_code >= 500 or response.status_code == 429:
                    raise Unavailable(f"{what} {url} answered HTTP {response.status_code}")
                if response.status_code != 200:
                    raise Unauthenticated(f"{what} {url} answered HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise Unauthenticated(f"{what} {url} is larger than {MAX_DOCUMENT_BYTES} B")
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot fetch {what} {url}: {exc}") from exc
        try:
            value = json.loads(bytes(body))
        except ValueError as exc:
            raise Unauthenticated(f"{what} {url} is not valid JSON") from exc
        if not isinstance(value, dict):
            raise Unauthenticated(f"{what} {url} is not a JSON object")
        return value
