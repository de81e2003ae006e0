"""The embedded OpenID Connect provider served at ``<public-url>/oidc`` (contracts.md §2-§3).

Endpoints (relative to the issuer): discovery (OIDC Discovery §4), ``/jwks`` (RFC 7517),
``/auth`` (authorization code + PKCE, OIDC Core §3.1, RFC 7636) with a CSRF-protected sign-in
form, ``/token`` (RFC 6749 §3.2: authorization_code, password §4.3, client_credentials §4.4,
device_code RFC 8628 §3.4), ``/device/code`` and ``/device`` (RFC 8628 §3.1, §3.3), and
``/userinfo`` (OIDC Core §5.3).

Machine clients (client credentials) get tokens from a second issuer, ``<issuer>/ci``, whose
subjects are URIs: a CA maps one issuer to one identity type (protocols.md §1.3), and people are
email identities while CI machines are URI identities.

The package is layered: this module holds configuration and state (no web framework);
:mod:`~keyless.services.oidc.grants` is the OAuth grant logic over it;
:mod:`~keyless.services.oidc.pages` renders the HTML pages and checks CSRF; and
:mod:`~keyless.services.oidc.routes` translates HTTP requests and responses.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from keyless.errors import ConfigError
from keyless.identity import IssuerConfig
from keyless.sealing import SealedKv, Sealer
from keyless.services.oidc.accounts import OidcClient, OidcUser
from keyless.services.oidc.codes import CodeStore
from keyless.services.oidc.factors import FactorStore
from keyless.services.oidc.keyring import OidcKeyRing
from keyless.services.oidc.kv import MemoryKV
from keyless.services.oidc.passkeys import PasskeyStore
from keyless.services.oidc.ratelimit import EventLimiter, LoginLimiter
from keyless.services.oidc.tokens import TokenMinter
from keyless.services.oidc.totp import TotpChecker
from keyless.services.oidc.upstream import Upstream, UpstreamLogin
from keyless.storage.seam import SharedKeyValue

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: Device authorizations one client address may start per minute: they need no credentials
#: and each one is a stored row.
DEVICE_CODES_PER_MINUTE = 60


class OidcProvider:
    """The embedded identity provider's configuration and state: accounts, clients, key ring,
    codes and throttles. :mod:`~keyless.services.oidc.grants` acts on it and
    :func:`keyless.services.oidc.routes.routes` serves it under the issuer's path."""

    def __init__(
        self,
        issuer: str,
        *,
        users: Iterable[OidcUser] = (),
        clients: Iterable[OidcClient] = (),
        kv: SharedKeyValue | None = None,
        keys: OidcKeyRing | None = None,
        clock: Callable[[], float] = time.time,
        token_lifetime: int = 600,
        code_lifetime: int = 60,
        device_lifetime: int = 600,
        device_interval: int = 5,
        rotation_period: float = 86400.0,
        machine_subject_domain: str | None = None,
        limiter: LoginLimiter | None = None,
        password_grant: bool = True,
        require_second_factor: bool = False,
        sealer: Sealer | None = None,
        upstreams: Iterable[Upstream] = (),
        webauthn_user_verification: str = "preferred",
    ) -> None:
        parts = urlsplit(issuer)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ConfigError(f"OIDC issuer {issuer!r} must be an http(s) URL without query")
        self.issuer = issuer.rstrip("/")
        self.machine_issuer = self.issuer + "/ci"
        self.path = parts.path.rstrip("/")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.secure = parts.scheme == "https"
        self.clock = clock
        self._kv: SharedKeyValue = kv if kv is not None else MemoryKV(clock)
        #: the signing key ring (public for tests and admin tooling that mint tokens).
        self.keys = keys or OidcKeyRing(
            self._kv, clock, rotation_period=rotation_period, token_lifetime=token_lifetime
        )
        self.minter = TokenMinter(self.keys, clock, token_lifetime)
        self.codes = CodeStore(self._kv)
        #: the sign-in throttle; its hard limits count in ``kv``, shared by every process
        self.limiter = limiter or LoginLimiter(clock=clock, events=self._kv)
        #: one-time codes of users with a TOTP second factor, each accepted once
        self.totp = TotpChecker(self._kv, clock)
        #: factors users enrolled on the account page (TOTP secrets wrapped under ``sealer``)
        self.factors = FactorStore(self._kv if sealer is None else SealedKv(self._kv, sealer),
                                   clock)
        #: ``[oidc] require_second_factor``: users without one must enrol before signing in
        self.require_second_factor = require_second_factor
        #: WebAuthn security keys and passkeys (relying party: the issuer's host)
        self.passkeys = PasskeyStore(
            self._kv if sealer is None else SealedKv(self._kv, sealer),
            rp_id=parts.hostname, origin=self.origin,
            user_verification=webauthn_user_verification, clock=clock,
        )
        #: sign-in challenges one client address may ask for per minute (each is a stored row)
        self.key_challenges = EventLimiter(
            DEVICE_CODES_PER_MINUTE, 60.0, clock, events=self._kv, namespace="oidc-key-challenges",
            message="too many security key requests from this address; try again later",
        )
        #: company single sign-on through ``[[oidc_upstreams]]``
        self.upstream = UpstreamLogin(upstreams, self._kv, self.issuer + "/upstream/callback",
                                      clock)
        #: whether the token endpoint takes the password grant (``[oidc] password_grant``)
        self.password_grant = password_grant
        # Device codes need no credentials and each is a stored row: throttle them per client
        # address so a flood is answered 429 + Retry-After rather than filling the database.
        self.device_codes = EventLimiter(
            DEVICE_CODES_PER_MINUTE,
            60.0,
            clock,
            events=self._kv,
            namespace="oidc-device-codes",
            message=f"more than {DEVICE_CODES_PER_MINUTE} device codes a minute from this "
            "address; try again later",
        )
        self.code_lifetime = code_lifetime
        self.device_lifetime = device_lifetime
        self.device_interval = device_interval
        self.users = {u.email.lower(): u for u in users}
        self.clients = {c.client_id: c for c in clients}
        self.clients.setdefault("sigstore", OidcClient("sigstore"))
        self.machine_subject_domain = machine_subject_domain or self.origin
        domain = urlsplit(self.machine_subject_domain)
        for client in self.clients.values():
            subject = urlsplit(client.subject) if client.subject else None
            if subject and (subject.scheme, subject.hostname) != (domain.scheme, domain.hostname):
                raise ConfigError(
                    f"OIDC client {client.client_id}: subject {client.subject!r} must have the "
                    f"scheme and host of the machine subject domain {self.machine_subject_domain}"
                )

    # -- what the rest of keyless needs -------------------------------------------------

    def issuer_configs(self) -> list[IssuerConfig]:
        """How the CA should trust this provider: people (email) and, if any, machines (uri)."""
        configs = [IssuerConfig(self.issuer, "email", description="embedded provider")]
        if any(c.subject for c in self.clients.values()):
            configs.append(
                IssuerConfig(
                    self.machine_issuer,
                    "uri",
                    subject_domain=self.machine_subject_domain,
                    description="embedded provider, CI machines",
                )
            )
        return configs

    def local_jwks(self) -> dict[str, Callable[[], Awaitable[Mapping[str, Any]]]]:
        """For ``IdentityVerifier(local_jwks=...)``: this process's keys without an HTTP hop."""
        return {self.issuer: self.keys.jwks, self.machine_issuer: self.keys.jwks}

    async def totp_secret(self, email: str) -> str | None:
        """The TOTP secret of ``email``: from the configuration, else enrolled, else none."""
        user = self.users.get(email.lower())
        if user is not None and user.totp_secret:
            return user.totp_secret
        enrolled = await self.factors.get(email)
        return enrolled.totp_secret if enrolled else None

    async def amr(self, email: str) -> list[str]:
        """RFC 8176 authentication methods of a sign-in of ``email``: every sign-in of a user
        with a second factor had to pass it (:mod:`~.grants` enforces it)."""
        return ["pwd", "otp"] if await self.totp_secret(email) else ["pwd"]

    async def start(self) -> None:
        """Create the current and next signing keys ahead of the first request."""
        await self.keys.jwks()

    async def close(self) -> None:
        """Close the HTTP client of the upstream sign-ins (other state lives in the store)."""
        await self.upstream.close()

    # -- metadata ----------------------------------------------------------------------

    def discovery_document(self) -> dict[str, Any]:
        """OpenID Provider Metadata (OIDC Discovery §3; RFC 8414 §2; RFC 8628 §4)."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/auth",
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": self.issuer + "/jwks",
            "userinfo_endpoint": self.issuer + "/userinfo",
            "device_authorization_endpoint": self.issuer + "/device/code",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": [
                "authorization_code",
                *(["password"] if self.password_grant else []),
                "client_credentials",
                DEVICE_GRANT,
            ],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "scopes_supported": ["openid", "email", "profile"],
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "nbf",
                "auth_time",
                "nonce",
                "jti",
                "email",
                "email_verified",
                "amr",
            ],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "code_challenge_methods_supported": ["S256"],
        }

    def machine_discovery_document(self) -> dict[str, Any]:
        """Metadata of the machine issuer ``<issuer>/ci`` (same keys and token endpoint)."""
        doc = {
            "issuer": self.machine_issuer,
            "authorization_endpoint": self.issuer + "/auth",
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": self.issuer + "/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["client_credentials"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }
        return doc
