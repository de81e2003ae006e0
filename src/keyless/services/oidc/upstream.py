"""Company single sign-on: the login page offers "Sign in with NAME" for upstream providers.

keyless plays the part Dex plays in front of public-good Fulcio: for an ``[[oidc_upstreams]]``
entry it runs the authorization code flow with PKCE (RFC 7636) against the upstream OpenID
provider, verifies the upstream ID token (discovery + JWKS, signature, ``iss``, ``aud`` = our
client id, expiry, ``email_verified``: :class:`keyless.identity.IdentityVerifier`) and its
``nonce``, checks the e-mail domain and the ``acr`` (e.g. the upstream's second factor) when
the entry requires them, and then finishes the *original* authorization request with its own
code, for the upstream e-mail. The token it issues names the upstream in ``idp`` and carries the
upstream's ``amr`` when it sent one.

State between the two legs (the original request, the PKCE verifier, the nonce) is kept in the
shared key-value store under an unguessable ``state`` for ten minutes and used once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from keyless.errors import ConfigError, InvalidInput, NotFound, Unauthenticated
from keyless.identity import IdentityVerifier, IssuerConfig
from keyless.storage.seam import KeyValue

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_STATE_NS = "oidc-upstream-state"
_USED_NS = "oidc-upstream-used"
STATE_SECONDS = 600


@dataclass(frozen=True)
class Upstream:
    """One ``[[oidc_upstreams]]`` entry."""

    name: str
    display_name: str
    issuer: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...] = ("openid", "email")
    allowed_domains: tuple[str, ...] = ()
    #: ``acr`` values of which the upstream ID token must carry one (e.g. its MFA context)
    require_acr: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ConfigError(f"[[oidc_upstreams]] name {self.name!r}: use a-z, 0-9 and '-'")
        if not self.issuer.startswith(("https://", "http://")):
            raise ConfigError(f"[[oidc_upstreams]] {self.name}: issuer must be an http(s) URL")
        if not self.client_id or not self.client_secret:
            raise ConfigError(f"[[oidc_upstreams]] {self.name}: client_id and client_secret "
                              "are required")

    def __repr__(self) -> str:  # never print the client secret
        return f"Upstream({self.name!r}, {self.issuer!r})"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Upstream:
        known = {"name", "display_name", "issuer", "client_id", "client_secret", "scopes",
                 "allowed_domains", "require_acr"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"[[oidc_upstreams]]: unknown keys {sorted(unknown)}")
        try:
            name = str(data["name"])
            scopes = data.get("scopes", ["openid", "email"])
            domains = data.get("allowed_domains", [])
            acr = data.get("require_acr", [])
            lists = (scopes, domains, acr)
            if not all(isinstance(v, list) for v in lists) or not all(
                isinstance(v, str) for v in [*scopes, *domains, *acr]
            ):
                raise TypeError
            return cls(name, str(data.get("display_name", name)), str(data["issuer"]).rstrip("/"),
                       str(data["client_id"]), str(data["client_secret"]),
                       tuple(scopes), tuple(d.lower() for d in domains), tuple(acr))
        except KeyError as exc:
            raise ConfigError(f"[[oidc_upstreams]]: {exc.args[0]!r} is required") from exc
        except TypeError as exc:
            raise ConfigError("[[oidc_upstreams]]: scopes, allowed_domains and require_acr are "
                              "lists of strings") from exc


@dataclass(frozen=True)
class UpstreamIdentity:
    """Who signed in upstream, and the authorization request to finish for them."""

    upstream: Upstream
    email: str
    amr: list[str] | None
    request: dict[str, str]


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class UpstreamLogin:
    """Both legs of a sign-in through an upstream provider."""

    def __init__(
        self, upstreams: Iterable[Upstream], kv: KeyValue, callback_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.upstreams = {u.name: u for u in upstreams}
        self._kv = kv
        self.callback_url = callback_url
        self._clock = clock
        self._http: httpx.AsyncClient | None = None
        self._discovery: dict[str, dict[str, Any]] = {}
        self._verifiers: dict[str, IdentityVerifier] = {}

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    def upstream(self, name: str) -> Upstream:
        if name not in self.upstreams:
            raise NotFound(f"no upstream provider named {name[:40]!r}")
        return self.upstreams[name]

    async def _metadata(self, upstream: Upstream) -> dict[str, Any]:
        cached = self._discovery.get(upstream.name)
        if cached is not None:
            return cached
        url = upstream.issuer + "/.well-known/openid-configuration"
        try:
            answer = await self._client().get(url)
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Unauthenticated(f"upstream {upstream.name}: discovery failed ({exc})") from exc
        if not isinstance(document, dict) or document.get("issuer") != upstream.issuer or not all(
            isinstance(document.get(k), str)
            for k in ("authorization_endpoint", "token_endpoint")
        ):
            raise Unauthenticated(f"upstream {upstream.name}: its discovery document is unusable")
        self._discovery[upstream.name] = document
        return document

    async def start(self, name: str, request: Mapping[str, str]) -> str:
        """The upstream authorization URL for the (validated) original ``request``."""
        upstream = self.upstream(name)
        metadata = await self._metadata(upstream)
        state, nonce, verifier = (secrets.token_urlsafe(24), secrets.token_urlsafe(16),
                                  secrets.token_urlsafe(48))
        value = json.dumps({"upstream": name, "request": dict(request), "nonce": nonce,
                            "verifier": verifier}).encode()
        await self._kv.put_if_absent(_STATE_NS, state, value, self._clock() + STATE_SECONDS)
        query = urlencode({
            "response_type": "code", "client_id": upstream.client_id,
            "redirect_uri": self.callback_url, "scope": " ".join(upstream.scopes),
            "state": state, "nonce": nonce, "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256",
        })
        return f"{metadata['authorization_endpoint']}?{query}"

    async def finish(self, state: str, code: str) -> UpstreamIdentity:
        """Redeem the upstream's ``code`` for the sign-in started under ``state`` (once)."""
        if not 16 <= len(state) <= 64 or not code or len(code) > 2048:
            raise InvalidInput("the upstream answer has no valid state and code")
        raw = await self._kv.get(_STATE_NS, state)
        if raw is None or await self._kv.put_if_absent(
            _USED_NS, state, b"1", self._clock() + STATE_SECONDS
        ) is not None:
            raise InvalidInput("this sign-in expired or was already completed; start again")
        await self._kv.delete(_STATE_NS, state)
        saved = json.loads(raw)
        upstream = self.upstream(saved["upstream"])
        metadata = await self._metadata(upstream)
        try:
            answer = await self._client().post(
                metadata["token_endpoint"],
                data={"grant_type": "authorization_code", "code": code,
                      "redirect_uri": self.callback_url, "code_verifier": saved["verifier"]},
                auth=(upstream.client_id, upstream.client_secret),
            )
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Unauthenticated(f"upstream {upstream.name}: token request failed") from exc
        token = body.get("id_token") if isinstance(body, dict) else None
        if answer.status_code != 200 or not isinstance(token, str):
            raise Unauthenticated(f"upstream {upstream.name} refused the code "
                                  f"({str(body.get('error', answer.status_code))[:60]})")
        identity = await self._verifier(upstream).verify(token)
        claims = identity.claims
        if claims.get("nonce") != saved["nonce"]:
            raise Unauthenticated(f"upstream {upstream.name}: the ID token's nonce is wrong")
        if upstream.require_acr and claims.get("acr") not in upstream.require_acr:
            got = str(claims.get("acr"))[:60]
            raise Unauthenticated(
                f"upstream {upstream.name} did not assert a required authentication context "
                f"(acr {got!r}; required: {', '.join(upstream.require_acr)})"
            )
        email = identity.subject_alternative_name.lower()
        domain = email.rpartition("@")[2]
        if upstream.allowed_domains and domain not in upstream.allowed_domains:
            raise Unauthenticated(f"upstream {upstream.name}: e-mail domain {domain!r} is not "
                                  "allowed here")
        amr = claims.get("amr")
        amr = [a for a in amr if isinstance(a, str)][:8] if isinstance(amr, list) else None
        return UpstreamIdentity(upstream, email, amr, saved["request"])

    def _verifier(self, upstream: Upstream) -> IdentityVerifier:
        verifier = self._verifiers.get(upstream.name)
        if verifier is None:
            config = IssuerConfig(upstream.issuer, "email", client_id=upstream.client_id,
                                  description=f"upstream {upstream.name}")
            verifier = IdentityVerifier([config], self._client(), self._clock)
            self._verifiers[upstream.name] = verifier
        return verifier
