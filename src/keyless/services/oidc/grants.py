"""The OAuth grant logic of the embedded provider, free of any web framework.

Each function acts on an :class:`~keyless.services.oidc.service.OidcProvider` and raises the
project's error types: :class:`OAuthError` (an RFC 6749 §5.2 error code with its HTTP status),
:class:`~keyless.errors.Unauthenticated` for a wrong password, :class:`~keyless.errors.Pushback`
when a throttle refuses, :class:`DeviceCodeRefused` (an :class:`~keyless.errors.InvalidInput`)
for a bad device code. The HTTP layer (:mod:`keyless.services.oidc.routes`) turns them into
answers.

Grants: authorization code with PKCE (RFC 6749 §4.1, RFC 7636), password (§4.3), client
credentials (§4.4) and device code (RFC 8628 §3.4); plus client and user authentication, both
throttled by the provider's :class:`~keyless.services.oidc.ratelimit.LoginLimiter`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import jwt

from keyless.errors import Error, InvalidInput, Unauthenticated
from keyless.services.oidc.accounts import OidcClient, dummy_hash, verify_secret
from keyless.services.oidc.codes import AuthorizationGrant, format_user_code
from keyless.services.oidc.requests import AuthorizationRequest
from keyless.services.oidc.service import DEVICE_GRANT, OidcProvider

#: Audit trail of sign-ins and issued tokens (never passwords, codes or tokens themselves).
audit = logging.getLogger("keyless.oidc.audit")

MAX_PASSWORD = 1024
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_DEVICE_PENDING = {
    "authorization_pending": "the user has not approved the device yet",
    "slow_down": "polling too fast; add 5 seconds to the interval",
    "expired_token": "the device code expired; start again",
    "invalid_grant": "the device code is invalid or already used",
}


class DeviceCodeRefused(InvalidInput):
    """The user code entered on the device page is unknown, expired or already used."""


class OAuthError(Error):
    """An RFC 6749 §5.2 error (``error`` code, description, HTTP status, extra headers)."""

    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.headers = dict(headers or {})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def granted_scope(requested: str | None, default: str = "openid email") -> str:
    """The supported scopes among ``requested`` (``default`` when none is left)."""
    scopes = (requested or default).split()
    granted = [s for s in scopes if s in ("openid", "email", "profile")]
    return " ".join(granted) or default


# -- authentication ---------------------------------------------------------------------


class SecondFactorRequired(Unauthenticated):
    """The password was right, but the user has a second factor and no code was given."""


class EnrolmentRequired(Unauthenticated):
    """The provider requires a second factor and this user has none yet."""


#: longest one-time code field read (6 digits, or a recovery code ``abcd-efgh-ijkl-mnop``)
MAX_OTP = 32


async def authenticate_user(
    provider: OidcProvider, username: str, password: str, remote: str, *,
    otp: str | None = None, enrolling: bool = False,
) -> str:
    """The email of the user, or :class:`Unauthenticated`; throttled (:class:`Pushback`,
    :class:`LoginLimiter`: the attempt is reserved before the password is checked).

    A user with a TOTP secret must also give a current, unused one-time code ``otp``
    (:class:`SecondFactorRequired` when there is none); code guesses are throttled per
    (account, address) like passwords. A recovery code from enrolment may stand in for a
    code, once. With ``require_second_factor`` a user without a factor is refused
    (:class:`EnrolmentRequired`) unless ``enrolling`` (the account page).
    """
    account = username.lower()  # the same normalisation as the lookup
    user = provider.users.get(account)
    hashed = user.password_hash if user else dummy_hash()
    async with provider.limiter.attempt("user:" + account, remote) as attempt:
        ok = len(password) <= MAX_PASSWORD and await asyncio.to_thread(
            verify_secret, password, hashed
        )
        if user is not None and ok:
            attempt.succeeded()
    if user is None or not ok:
        audit.warning("sign-in failed", extra={"user": username[:256], "client": remote})
        raise Unauthenticated("wrong email or password")
    secret = await provider.totp_secret(user.email)
    if secret is None and provider.require_second_factor and not enrolling:
        raise EnrolmentRequired(
            "this provider requires a second factor: set one up on the account page "
            f"{provider.issuer}/account, then sign in again"
        )
    if secret:
        if not otp:
            raise SecondFactorRequired(
                "this account has a second factor: give the current one-time code (TOTP) "
                "from its authenticator app"
            )
        async with provider.limiter.attempt("otp:" + account, remote) as attempt:
            ok = len(otp) <= MAX_OTP and (
                await provider.totp.check(user.email, secret, otp)
                or (len(otp) > 8 and await provider.factors.use_recovery_code(user.email, otp))
            )
            if ok:
                attempt.succeeded()
        if not ok:
            audit.warning("second factor failed", extra={"user": user.email, "client": remote})
            raise Unauthenticated("wrong, expired or already used one-time code")
    audit.info("sign-in", extra={"user": user.email, "client": remote,
                                 "amr": ["pwd", "otp"] if secret else ["pwd"]})
    return user.email


async def authenticate_client(
    provider: OidcProvider, client_id: str, secret: str | None, basic: bool, remote: str
) -> OidcClient:
    """RFC 6749 §2.3: public clients send no (or an empty) secret; others must match.
    ``basic`` says the credentials came by HTTP Basic (a 401 then carries a challenge)."""
    challenge = {"WWW-Authenticate": 'Basic realm="keyless"'} if basic else {}
    client = provider.clients.get(client_id)
    if client is None:
        raise OAuthError("invalid_client", f"unknown client {client_id!r}", 401, challenge)
    if client.secret_hash is None:
        if secret:
            raise OAuthError("invalid_client", "this public client has no secret", 401, challenge)
        return client
    async with provider.limiter.attempt("client:" + client.client_id, remote) as attempt:
        ok = bool(secret) and len(secret or "") <= MAX_PASSWORD
        if ok:
            ok = await asyncio.to_thread(verify_secret, secret or "", client.secret_hash)
        if ok:
            attempt.succeeded()
    if not ok:
        raise OAuthError("invalid_client", "client authentication failed", 401, challenge)
    return client


# -- the token endpoint's grants --------------------------------------------------------


def _require(form: Mapping[str, str], *names: str) -> None:
    for name in names:
        if not form.get(name):
            raise OAuthError("invalid_request", f"parameter {name!r} is required")


async def _person_token(
    provider: OidcProvider, client: OidcClient, email: str, scope: str, **extra: Any
) -> Mapping[str, Any]:
    """A person's token; ``amr`` is the local user's unless ``extra`` names it (upstream)."""
    if "amr" not in extra:
        extra["amr"] = await provider.amr(email)
    token = await provider.minter.mint(
        provider.issuer, client.client_id, email, email=email, email_verified=True, **extra,
    )
    return provider.minter.response(token, scope)


async def _grant_code(
    provider: OidcProvider, client: OidcClient, form: Mapping[str, str], remote: str
) -> Mapping[str, Any]:
    """RFC 6749 §4.1.3 with the RFC 7636 §4.6 PKCE check."""
    _require(form, "code", "redirect_uri")
    grant = await provider.codes.redeem_authorization_code(form["code"], provider.clock())
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
    upstream: dict[str, Any] = {"idp": grant.idp, "amr": grant.amr} if grant.idp else {}
    if grant.amr is not None:  # a security key sign-in (or what the upstream reported)
        upstream["amr"] = grant.amr
    return await _person_token(
        provider, client, grant.email, grant.scope, nonce=grant.nonce, auth_time=grant.auth_time,
        **upstream,
    )


async def _grant_password(
    provider: OidcProvider, client: OidcClient, form: Mapping[str, str], remote: str
) -> Mapping[str, Any]:
    """RFC 6749 §4.3, for scripts (contracts.md §3); a user with a second factor sends the
    current one-time code in ``otp``. Off when ``[oidc] password_grant = false``."""
    if not provider.password_grant:
        raise OAuthError(
            "unsupported_grant_type",
            "the password grant is turned off on this provider ([oidc] password_grant = "
            "false); sign in through the browser (code + PKCE or device flow)",
        )
    _require(form, "username", "password")
    scope = granted_scope(form.get("scope"))
    try:
        email = await authenticate_user(
            provider, form["username"], form["password"], remote, otp=form.get("otp")
        )
    except SecondFactorRequired as exc:
        raise OAuthError(
            "invalid_grant", "this account has a second factor: send the current one-time code "
            "(TOTP) of its authenticator app in the form field 'otp'",
        ) from exc
    except Unauthenticated as exc:
        raise OAuthError("invalid_grant", str(exc)) from exc
    return await _person_token(provider, client, email, scope, auth_time=int(provider.clock()))


async def _grant_client_credentials(
    provider: OidcProvider, client: OidcClient, form: Mapping[str, str], remote: str
) -> Mapping[str, Any]:
    """RFC 6749 §4.4: a CI machine's own URI identity, from the machine issuer."""
    if client.subject is None:
        raise OAuthError("unauthorized_client", "this client has no machine identity (subject)")
    token = await provider.minter.mint(
        provider.machine_issuer, client.audience, client.subject, client_id=client.client_id
    )
    return provider.minter.response(token, granted_scope(form.get("scope"), "openid"))


async def _grant_device(
    provider: OidcProvider, client: OidcClient, form: Mapping[str, str], remote: str
) -> Mapping[str, Any]:
    """RFC 8628 §3.4-§3.5 polling."""
    _require(form, "device_code")
    outcome, value = await provider.codes.poll_device(form["device_code"], provider.clock())
    if outcome != "ok":
        if value is not None and value.client_id != client.client_id:
            raise OAuthError("invalid_grant", "the device code belongs to another client")
        raise OAuthError(outcome, _DEVICE_PENDING[outcome])
    grant, email = value
    if grant.client_id != client.client_id:
        raise OAuthError("invalid_grant", "the device code belongs to another client")
    return await _person_token(
        provider, client, email, grant.scope, auth_time=int(provider.clock())
    )


_Grant = Callable[[OidcProvider, OidcClient, Mapping[str, str], str], Awaitable[Mapping[str, Any]]]
_GRANTS: dict[str, _Grant] = {
    "authorization_code": _grant_code,
    "password": _grant_password,
    "client_credentials": _grant_client_credentials,
    DEVICE_GRANT: _grant_device,
}


async def issue_token(
    provider: OidcProvider, client: OidcClient, form: Mapping[str, str], remote: str
) -> Mapping[str, Any]:
    """The token response (RFC 6749 §5.1) for the ``grant_type`` of ``form``, audited."""
    grant_type = form.get("grant_type", "")
    grant = _GRANTS.get(grant_type)
    if grant is None:
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
    body = await grant(provider, client, form, remote)
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
    return body


# -- authorization code and device flows: the user's side ------------------------------


async def issue_authorization_code(
    provider: OidcProvider, auth: AuthorizationRequest, email: str, *,
    idp: str | None = None, amr: list[str] | None = None,
) -> str:
    """A one-time code for a validated request that ``email`` signed in to (RFC 6749 §4.1.2);
    ``idp``/``amr``: the upstream provider the user signed in with, and what it reported."""
    now = provider.clock()
    return await provider.codes.issue_authorization_code(
        AuthorizationGrant(
            client_id=auth.client.client_id,
            redirect_uri=auth.redirect_uri,
            code_challenge=auth.code_challenge,
            scope=auth.scope,
            nonce=auth.nonce,
            email=email,
            auth_time=int(now),
            expires_at=now + provider.code_lifetime,
            idp=idp,
            amr=amr,
        )
    )


async def start_device_flow(
    provider: OidcProvider, client: OidcClient, scope: str | None, remote: str
) -> dict[str, Any]:
    """RFC 8628 §3.1-§3.2: a new device authorization; throttled per client address."""
    granted = granted_scope(scope)
    await provider.device_codes.take("ip:" + remote)  # counts every issued code
    expires_at = provider.clock() + provider.device_lifetime
    device_code, grant = await provider.codes.issue_device_code(
        client.client_id, granted, expires_at, provider.device_interval
    )
    user_code = format_user_code(grant.user_code)
    return {
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": provider.issuer + "/device",
        "verification_uri_complete": provider.issuer
        + "/device?"
        + urlencode({"user_code": user_code}),
        "expires_in": provider.device_lifetime,
        "interval": provider.device_interval,
    }


async def approve_device(
    provider: OidcProvider, user_code: str, username: str, password: str, remote: str,
    *, otp: str | None = None,
) -> str:
    """RFC 8628 §3.3: the signed-in user approves the device showing ``user_code``; their email.

    Raises :class:`DeviceCodeRefused` for an unknown, expired or used code, :class:`Unauthenticated`
    for wrong credentials and :class:`Pushback` when throttled.
    """
    # a guessed user code counts against the address like a wrong password
    async with provider.limiter.attempt(None, remote) as attempt:
        found = await provider.codes.device_by_user_code(user_code)
        if found is not None and found[1].expires_at > provider.clock():
            attempt.succeeded()
    if found is None or not attempt.ok:
        raise DeviceCodeRefused("unknown or expired code")
    email = await authenticate_user(provider, username, password, remote, otp=otp)
    device_hash, grant = found
    if not await provider.codes.approve_device(device_hash, email, grant):
        raise DeviceCodeRefused("this code was already used")
    return email


# -- userinfo ----------------------------------------------------------------------------


async def userinfo(provider: OidcProvider, token: str) -> dict[str, Any]:
    """OIDC Core §5.3 claims for a bearer ID token of this provider, or :class:`Unauthenticated`
    naming why it is refused."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        keys = {k["kid"]: k for k in (await provider.keys.jwks())["keys"]}
        claims = jwt.decode(
            token,
            key=jwt.PyJWK(keys[kid], algorithm="ES256"),
            algorithms=["ES256"],
            issuer=[provider.issuer, provider.machine_issuer],
            options={
                "verify_aud": False,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
        raise Unauthenticated("the bearer token is not an ID token of this provider") from exc
    exp = claims.get("exp", 0)
    if not isinstance(exp, int | float) or exp < provider.clock():
        raise Unauthenticated("the bearer token has expired")
    return {k: claims[k] for k in ("sub", "email", "email_verified") if k in claims}


# -- enrolment of a second factor (the account page) -------------------------------------


class EnrolmentRefused(InvalidInput):
    """The enrolment expired, was completed already, or its first code was wrong."""


async def begin_enrolment(
    provider: OidcProvider, username: str, password: str, remote: str, *, otp: str | None = None
) -> tuple[str, str | None, str | None]:
    """Sign in for the account page: ``(email, pending id, new secret)``, or ``(email, None,
    None)`` when the user already has a second factor (then ``otp`` was required)."""
    email = await authenticate_user(provider, username, password, remote, otp=otp,
                                    enrolling=True)
    if await provider.totp_secret(email):
        return email, None, None
    pending, secret = await provider.factors.begin(email)
    audit.info("second factor enrolment started", extra={"user": email, "client": remote})
    return email, pending, secret


async def confirm_enrolment(
    provider: OidcProvider, pending: str, code: str, remote: str
) -> tuple[str, list[str]]:
    """Check the first code of a pending enrolment and complete it: ``(email, recovery codes)``
    (shown once). Code guesses are throttled like passwords."""
    found = await provider.factors.pending(pending)
    if found is None:
        raise EnrolmentRefused("this enrolment expired or was completed; start again")
    email, secret = found
    async with provider.limiter.attempt("otp:" + email, remote) as attempt:
        ok = len(code) <= MAX_OTP and await provider.totp.check(email, secret, code)
        if ok:
            attempt.succeeded()
    if not ok:
        raise EnrolmentRefused("wrong one-time code: enter the code the app shows now")
    codes = await provider.factors.complete(pending)
    if codes is None:
        raise EnrolmentRefused("this enrolment expired or was completed; start again")
    audit.info("second factor enrolled", extra={"user": email, "client": remote})
    return email, codes
