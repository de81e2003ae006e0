"""The embedded OpenID Connect provider served at ``<public-url>/oidc`` (contracts.md §2-§3).

Endpoints (relative to the issuer): discovery (OIDC Discovery §4), ``/jwks`` (RFC 7517),
``/auth`` (authorization code + PKCE, OIDC Core §3.1, RFC 7636) with a CSRF-protected sign-in
form, ``/token`` (RFC 6749 §3.2: authorization_code, password §4.3, client_credentials §4.4,
device_code RFC 8628 §3.4), ``/device/code`` and ``/device`` (RFC 8628 §3.1, §3.3), and
``/userinfo`` (OIDC Core §5.3).

Machine clients (client credentials) get tokens from a second issuer, ``<issuer>/ci``, whose
subjects are URIs: a CA maps one issuer to one identity type (protocols.md §1.3), and people are
email identities while CI machines are URI identities.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import jwt
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from keyless.errors import ConfigError, Error, Pushback, Unauthenticated
from keyless.identity import IssuerConfig
from keyless.services.oidc import pages
from keyless.services.oidc.accounts import OidcClient, OidcUser, dummy_hash, verify_secret
from keyless.services.oidc.codes import (
    AuthorizationGrant,
    CodeStore,
    format_user_code,
)
from keyless.services.oidc.keyring import OidcKeyRing
from keyless.services.oidc.kv import KeyValueStore, MemoryKV
from keyless.services.oidc.oauth import (
    NO_STORE,
    OAuthError,
    as_oauth_error,
    client_credentials,
    json_response,
    parse_form,
    read_form,
)
from keyless.services.oidc.ratelimit import EventLimiter, LoginLimiter
from keyless.services.oidc.requests import (
    FORM_PARAMETERS,
    OOB_REDIRECT,
    AuthorizationRequest,
    RedirectableError,
    UnsafeRequest,
)
from keyless.services.oidc.tokens import TokenMinter

#: Audit trail of sign-ins and issued tokens (never passwords, codes or tokens themselves).
audit = logging.getLogger("keyless.oidc.audit")

CSRF_COOKIE = "keyless_oidc_csrf"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
MAX_PASSWORD = 1024
#: Device authorizations one client address may start per minute: they need no credentials
#: and each one is a stored row.
DEVICE_CODES_PER_MINUTE = 60
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
HTML_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on POST.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class OidcProvider:
    """The embedded identity provider; mount :meth:`routes` under the issuer's path."""

    def __init__(
        self,
        issuer: str,
        *,
        users: Iterable[OidcUser] = (),
        clients: Iterable[OidcClient] = (),
        kv: KeyValueStore | None = None,
        keys: OidcKeyRing | None = None,
        clock: Callable[[], float] = time.time,
        token_lifetime: int = 600,
        code_lifetime: int = 60,
        device_lifetime: int = 600,
        device_interval: int = 5,
        rotation_period: float = 86400.0,
        machine_subject_domain: str | None = None,
        limiter: LoginLimiter | None = None,
    ) -> None:
        parts = urlsplit(issuer)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ConfigError(f"OIDC issuer {issuer!r} must be an http(s) URL without query")
        self.issuer = issuer.rstrip("/")
        self.machine_issuer = self.issuer + "/ci"
        self._path = parts.path.rstrip("/")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._secure = parts.scheme == "https"
        self._clock = clock
        self._kv: KeyValueStore = kv if kv is not None else MemoryKV(clock)
        #: the signing key ring (public for tests and admin tooling that mint tokens).
        self.keys = keys or OidcKeyRing(
            self._kv, clock, rotation_period=rotation_period, token_lifetime=token_lifetime
        )
        self._minter = TokenMinter(self.keys, clock, token_lifetime)
        self._codes = CodeStore(self._kv)
        self._limiter = limiter or LoginLimiter(clock=clock)
        # Device codes need no credentials and each is a stored row: throttle them per client
        # address so a flood is answered 429 + Retry-After rather than filling the database.
        self._device_codes = EventLimiter(
            DEVICE_CODES_PER_MINUTE,
            60.0,
            clock,
            message=f"more than {DEVICE_CODES_PER_MINUTE} device codes a minute from this "
            "address; try again later",
        )
        self._code_lifetime = code_lifetime
        self._device_lifetime = device_lifetime
        self._device_interval = device_interval
        self._users = {u.email.lower(): u for u in users}
        self._clients = {c.client_id: c for c in clients}
        self._clients.setdefault("sigstore", OidcClient("sigstore"))
        self.machine_subject_domain = machine_subject_domain or self._origin
        domain = urlsplit(self.machine_subject_domain)
        for client in self._clients.values():
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
        if any(c.subject for c in self._clients.values()):
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

    async def start(self) -> None:
        """Create the current and next signing keys ahead of the first request."""
        await self.keys.jwks()

    async def close(self) -> None:
        """Nothing to release (state lives in the key-value store)."""

    def routes(self) -> list[BaseRoute]:
        """Routes relative to the issuer URL's path."""
        return [
            Route("/.well-known/openid-configuration", self.discovery, methods=["GET"]),
            Route("/ci/.well-known/openid-configuration", self.machine_discovery, methods=["GET"]),
            Route("/jwks", self.jwks, methods=["GET"]),
            Route("/auth", self.authorize, methods=["GET", "POST"]),
            Route("/token", self.token, methods=["POST"]),
            Route("/device/code", self.device_authorization, methods=["POST"]),
            Route("/device", self.device_verification, methods=["GET", "POST"]),
            Route("/userinfo", self.userinfo, methods=["GET", "POST"]),
        ]

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
                "password",
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
            ],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "code_challenge_methods_supported": ["S256"],
        }

    async def discovery(self, request: Request) -> Response:
        """``/.well-known/openid-configuration`` (OIDC Discovery §4.2)."""
        return JSONResponse(self.discovery_document(), headers={"Cache-Control": "max-age=300"})

    async def machine_discovery(self, request: Request) -> Response:
        """Discovery of the machine issuer ``<issuer>/ci`` (same keys and token endpoint)."""
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
        return JSONResponse(doc, headers={"Cache-Control": "max-age=300"})

    async def jwks(self, request: Request) -> Response:
        """The JWK Set (RFC 7517 §5); short cache so rotations propagate within a minute."""
        return JSONResponse(await self.keys.jwks(), headers={"Cache-Control": "max-age=60"})

    # -- people: passwords, sessions-free sign-in ----------------------------------------

    @staticmethod
    def _remote(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    async def _authenticate_user(self, username: str, password: str, remote: str) -> str:
        """The email of the user, or :class:`Unauthenticated`; throttled (:class:`Pushback`,
        :class:`LoginLimiter`: the attempt is reserved before the password is checked)."""
        account = username.lower()  # the same normalisation as the lookup
        user = self._users.get(account)
        hashed = user.password_hash if user else dummy_hash()
        async with self._limiter.attempt("user:" + account, remote) as attempt:
            ok = len(password) <= MAX_PASSWORD and await asyncio.to_thread(
                verify_secret, password, hashed
            )
            if user is not None and ok:
                attempt.succeeded()
        if user is None or not ok:
            audit.warning("sign-in failed", extra={"user": username[:256], "client": remote})
            raise Unauthenticated("wrong email or password")
        audit.info("sign-in", extra={"user": user.email, "client": remote})
        return user.email

    def _html(
        self, body: str, status: int = 200, csrf: str | None = None, retry: float | None = None
    ) -> Response:
        headers = dict(HTML_HEADERS)
        if retry is not None:
            headers["Retry-After"] = _retry_after(retry)
        response = HTMLResponse(body, status_code=status, headers=headers)
        if csrf is not None:
            response.set_cookie(
                CSRF_COOKIE,
                csrf,
                path=self._path or "/",
                httponly=True,
                samesite="strict",
                secure=self._secure,
            )
        return response

    def _refusal(
        self,
        request: Request,
        page: str,
        status: int,
        message: str,
        *,
        csrf: str | None = None,
        retry: float | None = None,
    ) -> Response:
        """A refused browser request: the HTML ``page`` for browsers, and for every other client
        (scripts, API probes) the ``{"code", "message"}`` JSON of contracts.md §5."""
        if _wants_html(request):
            return self._html(page, status, csrf=csrf, retry=retry)
        headers = {"Cache-Control": "no-store"}
        if retry is not None:
            headers["Retry-After"] = _retry_after(retry)
        return json_response({"code": status, "message": message}, status, headers)

    @staticmethod
    def _csrf_cookie(request: Request) -> str:
        value = request.cookies.get(CSRF_COOKIE, "")
        return value if len(value) >= 32 else secrets.token_urlsafe(32)

    def _check_csrf(self, request: Request, form: Mapping[str, str]) -> None:
        """Double-submit cookie (SameSite=Strict) plus Origin check (OWASP CSRF cheat sheet)."""
        origin = request.headers.get("origin")
        if origin is not None and origin != self._origin:
            raise _FormRefused("this form was submitted from another site (Origin mismatch)")
        cookie = request.cookies.get(CSRF_COOKIE, "")
        token = form.get("csrf_token", "")
        if len(cookie) < 32 or not hmac.compare_digest(cookie.encode(), token.encode()):
            raise _FormRefused(
                "the form expired or was not submitted from this site (missing or wrong CSRF "
                "token); try again"
            )

    async def _read_html_form(self, request: Request) -> dict[str, str]:
        try:
            return await read_form(request)
        except OAuthError as exc:
            raise _FormRefused(exc.description, exc.status) from exc

    # -- authorization code flow --------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        """Sign-in page (GET) and its submission (POST) for the code flow (OIDC Core §3.1.2)."""
        try:
            if request.method == "GET":
                params = _single_query(request)
            else:
                params = await self._read_html_form(request)
                self._check_csrf(request, params)
        except OAuthError as exc:
            page = pages.message_page("Invalid sign-in request", exc.description)
            return self._refusal(request, page, exc.status, exc.description)
        except _FormRefused as exc:
            page = pages.message_page("Request refused", str(exc))
            return self._refusal(request, page, exc.status, str(exc))
        try:
            auth = AuthorizationRequest.parse(params, self._clients)
        except UnsafeRequest as exc:
            page = pages.message_page("Invalid sign-in request", str(exc))
            return self._refusal(request, page, 400, str(exc))
        except RedirectableError as exc:
            return self._redirect_error(request, params, exc)
        csrf = self._csrf_cookie(request)
        action = self._path + "/auth"
        if request.method == "GET":
            page = pages.login_page(action, auth.client.client_id, auth.params, csrf)
            return self._html(page, csrf=csrf)
        try:
            email = await self._authenticate_user(
                params.get("username", ""), params.get("password", ""), self._remote(request)
            )
        except Pushback as exc:
            page = pages.login_page(action, auth.client.client_id, auth.params, csrf, str(exc))
            return self._refusal(
                request, page, 429, str(exc), csrf=csrf, retry=exc.retry_after
            )
        except Unauthenticated as exc:
            page = pages.login_page(action, auth.client.client_id, auth.params, csrf, str(exc))
            return self._refusal(request, page, 401, str(exc), csrf=csrf)
        now = self._clock()
        code = await self._codes.issue_authorization_code(
            AuthorizationGrant(
                client_id=auth.client.client_id,
                redirect_uri=auth.redirect_uri,
                code_challenge=auth.code_challenge,
                scope=auth.scope,
                nonce=auth.nonce,
                email=email,
                auth_time=int(now),
                expires_at=now + self._code_lifetime,
            )
        )
        if auth.redirect_uri == OOB_REDIRECT:
            page = pages.message_page(
                "Signed in", "Copy this code into the program that asked you to sign in:", code
            )
            return self._html(page)
        result = {"code": code}
        if auth.state is not None:
            result["state"] = auth.state
        return RedirectResponse(_add_query(auth.redirect_uri, result), status_code=303)

    def _redirect_error(
        self, request: Request, params: Mapping[str, str], exc: RedirectableError
    ) -> Response:
        redirect_uri = params["redirect_uri"]
        if redirect_uri == OOB_REDIRECT:
            page = pages.message_page("Sign-in refused", exc.description)
            return self._refusal(request, page, 400, f"{exc.error}: {exc.description}")
        result = {"error": exc.error, "error_description": exc.description}
        if "state" in params:
            result["state"] = params["state"]
        return RedirectResponse(_add_query(redirect_uri, result), status_code=303)

    # -- token endpoint -------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        """The token endpoint (RFC 6749 §3.2); errors per §5.2."""
        try:
            form = await read_form(request)
            client = await self._authenticate_client(request, form)
            grant_type = form.get("grant_type", "")
            handlers = {
                "authorization_code": self._grant_code,
                "password": self._grant_password,
                "client_credentials": self._grant_client_credentials,
                DEVICE_GRANT: self._grant_device,
            }
            handler = handlers.get(grant_type)
            if handler is None:
                raise OAuthError(
                    "unsupported_grant_type", f"grant_type {grant_type!r} is not supported"
                )
            body = await handler(client, form, request)
            claims = jwt.decode(str(body["id_token"]), options={"verify_signature": False})
            audit.info(
                "token issued",
                extra={
                    "grant": grant_type,
                    "oauth_client": client.client_id,
                    "sub": claims.get("sub"),
                    "jti": claims.get("jti"),
                },
            )
            return json_response(body, 200, NO_STORE)
        except OAuthError as exc:
            return exc.response()
        except Pushback as exc:
            retry = {"Retry-After": _retry_after(exc.retry_after)}
            return OAuthError("temporarily_unavailable", str(exc), 429, retry).response()
        except Error as exc:
            return as_oauth_error(exc).response()

    async def _authenticate_client(self, request: Request, form: Mapping[str, str]) -> OidcClient:
        """RFC 6749 §2.3: public clients send no (or an empty) secret; others must match."""
        client_id, secret, basic = client_credentials(request, form)
        challenge = {"WWW-Authenticate": 'Basic realm="keyless"'} if basic else {}
        client = self._clients.get(client_id)
        if client is None:
            raise OAuthError("invalid_client", f"unknown client {client_id!r}", 401, challenge)
        if client.secret_hash is None:
            if secret:
                raise OAuthError(
                    "invalid_client", "this public client has no secret", 401, challenge
                )
            return client
        account = "client:" + client.client_id
        async with self._limiter.attempt(account, self._remote(request)) as attempt:
            ok = bool(secret) and len(secret or "") <= MAX_PASSWORD
            if ok:
                ok = await asyncio.to_thread(verify_secret, secret or "", client.secret_hash)
            if ok:
                attempt.succeeded()
        if not ok:
            raise OAuthError("invalid_client", "client authentication failed", 401, challenge)
        return client

    @staticmethod
    def _require(form: Mapping[str, str], *names: str) -> None:
        for name in names:
            if not form.get(name):
                raise OAuthError("invalid_request", f"parameter {name!r} is required")

    async def _person_token(
        self, client: OidcClient, email: str, scope: str, **extra: Any
    ) -> Mapping[str, Any]:
        token = await self._minter.mint(
            self.issuer, client.client_id, email, email=email, email_verified=True, **extra
        )
        return self._minter.response(token, scope)

    async def _grant_code(
        self, client: OidcClient, form: Mapping[str, str], request: Request
    ) -> Mapping[str, Any]:
        """RFC 6749 §4.1.3 with the RFC 7636 §4.6 PKCE check."""
        self._require(form, "code", "redirect_uri")
        grant = await self._codes.redeem_authorization_code(form["code"], self._clock())
        invalid = "the authorization code is invalid, expired or already used"
        if grant is None or grant.client_id != client.client_id:
            raise OAuthError("invalid_grant", invalid)
        if grant.redirect_uri != form["redirect_uri"]:
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request")
        verifier = form.get("code_verifier")
        if grant.code_challenge is not None:
            if not verifier or not _VERIFIER.fullmatch(verifier):
                raise OAuthError("invalid_grant", "a valid code_verifier is required (RFC 7636)")
            computed = _b64(hashlib.sha256(verifier.encode("ascii")).digest())
            if not hmac.compare_digest(computed, grant.code_challenge):
                raise OAuthError("invalid_grant", "code_verifier does not match the challenge")
        elif verifier is not None:
            raise OAuthError("invalid_grant", "no code_challenge was sent for this code")
        return await self._person_token(
            client, grant.email, grant.scope, nonce=grant.nonce, auth_time=grant.auth_time
        )

    async def _grant_password(
        self, client: OidcClient, form: Mapping[str, str], request: Request
    ) -> Mapping[str, Any]:
        """RFC 6749 §4.3, for scripts (contracts.md §3)."""
        self._require(form, "username", "password")
        scope = _granted_scope(form.get("scope"))
        try:
            email = await self._authenticate_user(
                form["username"], form["password"], self._remote(request)
            )
        except Unauthenticated as exc:
            raise OAuthError("invalid_grant", str(exc)) from exc
        return await self._person_token(client, email, scope, auth_time=int(self._clock()))

    async def _grant_client_credentials(
        self, client: OidcClient, form: Mapping[str, str], request: Request
    ) -> Mapping[str, Any]:
        """RFC 6749 §4.4: a CI machine's own URI identity, from the machine issuer."""
        if client.subject is None:
            raise OAuthError("unauthorized_client", "this client has no machine identity (subject)")
        token = await self._minter.mint(
            self.machine_issuer, client.audience, client.subject, client_id=client.client_id
        )
        return self._minter.response(token, _granted_scope(form.get("scope"), "openid"))

    async def _grant_device(
        self, client: OidcClient, form: Mapping[str, str], request: Request
    ) -> Mapping[str, Any]:
        """RFC 8628 §3.4-§3.5 polling."""
        self._require(form, "device_code")
        outcome, value = await self._codes.poll_device(form["device_code"], self._clock())
        if outcome != "ok":
            if value is not None and value.client_id != client.client_id:
                raise OAuthError("invalid_grant", "the device code belongs to another client")
            descriptions = {
                "authorization_pending": "the user has not approved the device yet",
                "slow_down": "polling too fast; add 5 seconds to the interval",
                "expired_token": "the device code expired; start again",
                "invalid_grant": "the device code is invalid or already used",
            }
            raise OAuthError(outcome, descriptions[outcome])
        grant, email = value
        if grant.client_id != client.client_id:
            raise OAuthError("invalid_grant", "the device code belongs to another client")
        return await self._person_token(client, email, grant.scope, auth_time=int(self._clock()))

    # -- device authorization ---------------------------------------------------------------

    async def device_authorization(self, request: Request) -> Response:
        """RFC 8628 §3.1-§3.2: start a device flow."""
        try:
            form = await read_form(request)
            client = await self._authenticate_client(request, form)
            scope = _granted_scope(form.get("scope"))
            self._device_codes.take("ip:" + self._remote(request))  # counts every issued code
            expires_at = self._clock() + self._device_lifetime
            device_code, grant = await self._codes.issue_device_code(
                client.client_id, scope, expires_at, self._device_interval
            )
        except OAuthError as exc:
            return exc.response()
        except Pushback as exc:
            retry = {"Retry-After": _retry_after(exc.retry_after)}
            return OAuthError("temporarily_unavailable", str(exc), 429, retry).response()
        except Error as exc:
            return as_oauth_error(exc).response()
        user_code = format_user_code(grant.user_code)
        body = {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": self.issuer + "/device",
            "verification_uri_complete": self.issuer
            + "/device?"
            + urlencode({"user_code": user_code}),
            "expires_in": self._device_lifetime,
            "interval": self._device_interval,
        }
        return json_response(body, 200, NO_STORE)

    async def device_verification(self, request: Request) -> Response:
        """RFC 8628 §3.3: the user enters the code and signs in to approve the device."""
        csrf = self._csrf_cookie(request)
        action = self._path + "/device"
        if request.method == "GET":
            user_code = request.query_params.get("user_code", "")
            return self._html(pages.device_page(action, csrf, user_code[:32]), csrf=csrf)
        try:
            form = await self._read_html_form(request)
            self._check_csrf(request, form)
        except _FormRefused as exc:
            page = pages.device_page(action, csrf, error=str(exc))
            return self._refusal(request, page, exc.status, str(exc), csrf=csrf)
        user_code = form.get("user_code", "")[:32]
        remote = self._remote(request)

        def again(message: str, status: int, retry: float | None = None) -> Response:
            page = pages.device_page(action, csrf, user_code, message)
            return self._refusal(request, page, status, message, csrf=csrf, retry=retry)

        try:
            # a guessed user code counts against the address like a wrong password
            async with self._limiter.attempt(None, remote) as attempt:
                found = await self._codes.device_by_user_code(user_code)
                if found is not None and found[1].expires_at > self._clock():
                    attempt.succeeded()
            if found is None or not attempt.ok:
                return again("unknown or expired code", 400)
            email = await self._authenticate_user(
                form.get("username", ""), form.get("password", ""), remote
            )
        except Pushback as exc:
            return again(str(exc), 429, exc.retry_after)
        except Unauthenticated as exc:
            return again(str(exc), 401)
        device_hash, grant = found
        if not await self._codes.approve_device(device_hash, email, grant):
            return again("this code was already used", 400)
        page = pages.message_page(
            "Device approved", f"The device may now act as {email}. You can close this page."
        )
        return self._html(page, csrf=csrf)

    # -- userinfo ---------------------------------------------------------------------------

    async def userinfo(self, request: Request) -> Response:
        """OIDC Core §5.3 with the identity JWT as bearer access token (RFC 6750 §2.1)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}

        def refused(message: str) -> Response:
            body = {"error": "invalid_token", "error_description": message,
                    "code": 401, "message": message}  # fmt: skip
            return json_response(body, 401, challenge)

        if scheme.lower() != "bearer" or not token:
            return refused("an 'Authorization: Bearer <ID token>' header is required")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            keys = {k["kid"]: k for k in (await self.keys.jwks())["keys"]}
            claims = jwt.decode(
                token,
                key=jwt.PyJWK(keys[kid], algorithm="ES256"),
                algorithms=["ES256"],
                issuer=[self.issuer, self.machine_issuer],
                options={
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            return refused("the bearer token is not an ID token of this provider")
        exp = claims.get("exp", 0)
        if not isinstance(exp, int | float) or exp < self._clock():
            return refused("the bearer token has expired")
        info: dict[str, Any] = {
            k: claims[k] for k in ("sub", "email", "email_verified") if k in claims
        }
        return json_response(info, 200, NO_STORE)


class _FormRefused(Exception):
    """A browser form that must not be processed (CSRF, cross-origin, malformed)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _wants_html(request: Request) -> bool:
    """Whether the client is a browser: browsers name ``text/html`` in ``Accept`` for every
    navigation and form submission; API clients and scripts (``*/*``) do not."""
    accept = request.headers.get("accept", "").lower()
    return "text/html" in accept or "application/xhtml+xml" in accept


def _retry_after(seconds: float) -> str:
    """A ``Retry-After`` value (RFC 9110 §10.2.3): whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


def _single_query(request: Request) -> dict[str, str]:
    """Query parameters; repeated ones are refused (RFC 6749 §3.1)."""
    parsed = parse_form(request.url.query.encode())
    return {k: v for k, v in parsed.items() if k in FORM_PARAMETERS or k == "prompt"}


def _granted_scope(requested: str | None, default: str = "openid email") -> str:
    scopes = (requested or default).split()
    granted = [s for s in scopes if s in ("openid", "email", "profile")]
    return " ".join(granted) or default


def _add_query(uri: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
