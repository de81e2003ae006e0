"""HTTP routes of the embedded OpenID Connect provider, relative to the issuer's path.

The handlers only translate: they read the request (forms, query, cookies, client address),
call :mod:`~keyless.services.oidc.grants`, and render the answer: RFC 6749 §5.2 JSON for the
OAuth endpoints, the :mod:`~keyless.services.oidc.pages` HTML (with its CSRF cookie) for
browsers, and ``{"code", "message"}`` JSON for any other client a page refuses (contracts.md §5).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from keyless.errors import Error, InvalidInput, NotFound, Pushback, Unauthenticated
from keyless.services.oidc import grants, pages
from keyless.services.oidc.grants import DeviceCodeRefused, OAuthError
from keyless.services.oidc.oauth import (
    NO_STORE,
    as_oauth_error,
    client_credentials,
    json_response,
    oauth_error_response,
    parse_form,
    read_form,
)
from keyless.services.oidc.pages import CSRF_COOKIE, HTML_HEADERS, FormRefused
from keyless.services.oidc.requests import (
    FORM_PARAMETERS,
    OOB_REDIRECT,
    AuthorizationRequest,
    RedirectableError,
    UnsafeRequest,
)
from keyless.services.oidc.service import OidcProvider
from keyless.services.oidc.totp import provisioning_uri

T = TypeVar("T")


def routes(provider: OidcProvider) -> list[Route]:
    """The provider's routes, to mount under the issuer URL's path."""
    endpoints = _Endpoints(provider)
    return [
        Route("/.well-known/openid-configuration", endpoints.discovery, methods=["GET"]),
        Route(
            "/ci/.well-known/openid-configuration", endpoints.machine_discovery, methods=["GET"]
        ),
        Route("/jwks", endpoints.jwks, methods=["GET"]),
        Route("/auth", endpoints.authorize, methods=["GET", "POST"]),
        Route("/token", endpoints.token, methods=["POST"]),
        Route("/device/code", endpoints.device_authorization, methods=["POST"]),
        Route("/device", endpoints.device_verification, methods=["GET", "POST"]),
        Route("/userinfo", endpoints.userinfo, methods=["GET", "POST"]),
        Route("/account", endpoints.account, methods=["GET", "POST"]),
        Route("/account/keys", endpoints.account_keys, methods=["GET", "POST"]),
        Route("/account/keys/register", endpoints.register_key, methods=["POST"]),
        Route("/webauthn/options", endpoints.key_options, methods=["POST"]),
        Route("/webauthn/login", endpoints.key_login, methods=["POST"]),
        Route("/static/webauthn.js", endpoints.webauthn_script, methods=["GET"]),
        Route("/upstream/callback", endpoints.upstream_callback, methods=["GET"]),
        Route("/upstream/{name}", endpoints.upstream_start, methods=["GET"]),
        Route("/account/confirm", endpoints.confirm_enrolment, methods=["POST"]),
    ]


class _Endpoints:
    """The Starlette handlers over one provider."""

    def __init__(self, provider: OidcProvider) -> None:
        self.provider = provider

    # -- metadata ----------------------------------------------------------------------

    async def discovery(self, request: Request) -> Response:
        """``/.well-known/openid-configuration`` (OIDC Discovery §4.2)."""
        document = self.provider.discovery_document()
        return JSONResponse(document, headers={"Cache-Control": "max-age=300"})

    async def machine_discovery(self, request: Request) -> Response:
        """Discovery of the machine issuer ``<issuer>/ci`` (same keys and token endpoint)."""
        document = self.provider.machine_discovery_document()
        return JSONResponse(document, headers={"Cache-Control": "max-age=300"})

    async def jwks(self, request: Request) -> Response:
        """The JWK Set (RFC 7517 §5); short cache so rotations propagate within a minute."""
        keys = await self.provider.keys.jwks()
        return JSONResponse(keys, headers={"Cache-Control": "max-age=60"})

    # -- browser pages ---------------------------------------------------------------------

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
                path=self.provider.path or "/",
                httponly=True,
                samesite="strict",
                secure=self.provider.secure,
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

    def _check_csrf(self, request: Request, form: Mapping[str, str]) -> None:
        pages.check_csrf(
            request.headers.get("origin"),
            self.provider.origin,
            request.cookies.get(CSRF_COOKIE, ""),
            form.get("csrf_token", ""),
        )

    @staticmethod
    async def _read_html_form(request: Request) -> dict[str, str]:
        try:
            return await read_form(request)
        except OAuthError as exc:
            raise FormRefused(exc.description, exc.status) from exc

    # -- authorization code flow --------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        """Sign-in page (GET) and its submission (POST) for the code flow (OIDC Core §3.1.2)."""
        provider = self.provider
        try:
            if request.method == "GET":
                params = _single_query(request)
            else:
                params = await self._read_html_form(request)
                self._check_csrf(request, params)
        except OAuthError as exc:
            page = pages.message_page("Invalid sign-in request", exc.description)
            return self._refusal(request, page, exc.status, exc.description)
        except FormRefused as exc:
            page = pages.message_page("Request refused", str(exc))
            return self._refusal(request, page, exc.status, str(exc))
        try:
            auth = AuthorizationRequest.parse(params, provider.clients)
        except UnsafeRequest as exc:
            page = pages.message_page("Invalid sign-in request", str(exc))
            return self._refusal(request, page, 400, str(exc))
        except RedirectableError as exc:
            return self._redirect_error(request, params, exc)
        csrf = pages.csrf_token(request.cookies.get(CSRF_COOKIE, ""))
        action = provider.path + "/auth"
        upstreams = self._upstream_links(auth)
        if request.method == "GET":
            page = pages.login_page(action, auth.client.client_id, auth.params, csrf,
                                    upstreams=upstreams)
            return self._html(page, csrf=csrf)
        try:
            email = await grants.authenticate_user(
                provider, params.get("username", ""), params.get("password", ""),
                _remote(request), otp=params.get("otp") or None,
            )
        except Pushback as exc:
            page = pages.login_page(action, auth.client.client_id, auth.params, csrf, str(exc),
                                    upstreams=upstreams)
            return self._refusal(
                request, page, 429, str(exc), csrf=csrf, retry=exc.retry_after
            )
        except Unauthenticated as exc:
            page = pages.login_page(action, auth.client.client_id, auth.params, csrf, str(exc),
                                    upstreams=upstreams)
            return self._refusal(request, page, 401, str(exc), csrf=csrf)
        code = await grants.issue_authorization_code(provider, auth, email)
        return self._authorized(auth, code)

    def _authorized(self, auth: AuthorizationRequest, code: str) -> Response:
        """Hand the authorization code to the client (redirect, or the out-of-band page)."""
        if auth.redirect_uri == OOB_REDIRECT:
            page = pages.message_page(
                "Signed in", "Copy this code into the program that asked you to sign in:", code
            )
            return self._html(page)
        result = {"code": code}
        if auth.state is not None:
            result["state"] = auth.state
        return RedirectResponse(_add_query(auth.redirect_uri, result), status_code=303)

    def _upstream_links(self, auth: AuthorizationRequest) -> list[tuple[str, str]]:
        query = urlencode(auth.params)
        return [(u.display_name, f"{self.provider.path}/upstream/{u.name}?{query}")
                for u in self.provider.upstream.upstreams.values()]

    async def upstream_start(self, request: Request) -> Response:
        """"Sign in with NAME": validate the original request, go to the upstream provider."""
        provider = self.provider
        try:
            params = _single_query(request)
            auth = AuthorizationRequest.parse(params, provider.clients)
            target = await provider.upstream.start(request.path_params["name"], auth.params)
        except OAuthError as exc:
            page = pages.message_page("Invalid sign-in request", exc.description)
            return self._refusal(request, page, exc.status, exc.description)
        except (UnsafeRequest, RedirectableError) as exc:
            page = pages.message_page("Invalid sign-in request", str(exc))
            return self._refusal(request, page, 400, str(exc))
        except Error as exc:
            status = 404 if isinstance(exc, NotFound) else 502
            page = pages.message_page("Sign-in refused", str(exc))
            return self._refusal(request, page, status, str(exc))
        return RedirectResponse(target, status_code=303)

    async def upstream_callback(self, request: Request) -> Response:
        """The upstream provider's answer: verify its ID token, finish the original request."""
        provider = self.provider
        query = request.query_params
        if "error" in query:
            message = f"the upstream provider refused: {query.get('error', '')[:60]}"
            return self._refusal(request, pages.message_page("Sign-in refused", message), 400,
                                 message)
        try:
            signed_in = await provider.upstream.finish(query.get("state", ""),
                                                       query.get("code", ""))
            auth = AuthorizationRequest.parse(signed_in.request, provider.clients)
        except (UnsafeRequest, RedirectableError) as exc:
            page = pages.message_page("Invalid sign-in request", str(exc))
            return self._refusal(request, page, 400, str(exc))
        except Error as exc:
            status = 400 if isinstance(exc, InvalidInput) else 401
            page = pages.message_page("Sign-in refused", str(exc))
            return self._refusal(request, page, status, str(exc))
        code = await grants.issue_authorization_code(
            provider, auth, signed_in.email, idp=signed_in.upstream.issuer, amr=signed_in.amr
        )
        return self._authorized(auth, code)

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

    # -- OAuth endpoints ------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        """The token endpoint (RFC 6749 §3.2); errors per §5.2."""
        try:
            form = await read_form(request)
            client_id, secret, basic = client_credentials(request, form)
            remote = _remote(request)
            client = await grants.authenticate_client(
                self.provider, client_id, secret, basic, remote
            )
            body = await grants.issue_token(self.provider, client, form, remote)
            return json_response(body, 200, NO_STORE)
        except Error as exc:
            return _oauth_refusal(exc)

    async def device_authorization(self, request: Request) -> Response:
        """RFC 8628 §3.1-§3.2: start a device flow."""
        try:
            form = await read_form(request)
            client_id, secret, basic = client_credentials(request, form)
            remote = _remote(request)
            client = await grants.authenticate_client(
                self.provider, client_id, secret, basic, remote
            )
            body = await grants.start_device_flow(
                self.provider, client, form.get("scope"), remote
            )
        except Error as exc:
            return _oauth_refusal(exc)
        return json_response(body, 200, NO_STORE)

    async def device_verification(self, request: Request) -> Response:
        """RFC 8628 §3.3: the user enters the code and signs in to approve the device."""
        csrf = pages.csrf_token(request.cookies.get(CSRF_COOKIE, ""))
        action = self.provider.path + "/device"
        if request.method == "GET":
            user_code = request.query_params.get("user_code", "")
            return self._html(pages.device_page(action, csrf, user_code[:32]), csrf=csrf)
        try:
            form = await self._read_html_form(request)
            self._check_csrf(request, form)
        except FormRefused as exc:
            page = pages.device_page(action, csrf, error=str(exc))
            return self._refusal(request, page, exc.status, str(exc), csrf=csrf)
        user_code = form.get("user_code", "")[:32]

        def again(message: str, status: int, retry: float | None = None) -> Response:
            page = pages.device_page(action, csrf, user_code, message)
            return self._refusal(request, page, status, message, csrf=csrf, retry=retry)

        try:
            email = await grants.approve_device(
                self.provider,
                user_code,
                form.get("username", ""),
                form.get("password", ""),
                _remote(request),
                otp=form.get("otp") or None,
            )
        except Pushback as exc:
            return again(str(exc), 429, exc.retry_after)
        except Unauthenticated as exc:
            return again(str(exc), 401)
        except DeviceCodeRefused as exc:
            return again(str(exc), 400)
        page = pages.message_page(
            "Device approved", f"The device may now act as {email}. You can close this page."
        )
        return self._html(page, csrf=csrf)

    # -- account page: second factor enrolment ---------------------------------------------

    async def _account_sign_in(
        self,
        request: Request,
        action: str,
        act: Callable[[dict[str, str]], Awaitable[T]],
    ) -> tuple[str, T | Response]:
        """The account pages' shared front: GET shows the sign-in form; a POST is read, its
        CSRF token checked and ``act(form)`` run, refusals rendered on the form again (429 for
        throttling, 401 for bad credentials, 400 for bad input). Returns the CSRF token and
        ``act``'s result or the response to send."""
        csrf = pages.csrf_token(request.cookies.get(CSRF_COOKIE, ""))
        if request.method == "GET":
            return csrf, self._html(pages.account_page(action, csrf), csrf=csrf)
        status, retry = 400, None
        try:
            form = await self._read_html_form(request)
            self._check_csrf(request, form)
            return csrf, await act(form)
        except FormRefused as exc:
            refused: Exception = exc
            status = exc.status
        except Pushback as exc:
            refused, status, retry = exc, 429, exc.retry_after
        except Unauthenticated as exc:
            refused, status = exc, 401
        except InvalidInput as exc:
            refused = exc
        page = pages.account_page(action, csrf, str(refused))
        return csrf, self._refusal(request, page, status, str(refused), csrf=csrf, retry=retry)

    async def account(self, request: Request) -> Response:
        """Sign in (GET: the form) and get a new TOTP secret as a QR code to scan."""
        provider = self.provider

        async def begin(form: dict[str, str]) -> tuple[str, str | None, str | None]:
            return await grants.begin_enrolment(
                provider, form.get("username", ""), form.get("password", ""), _remote(request),
                otp=form.get("otp") or None,
            )

        csrf, outcome = await self._account_sign_in(request, provider.path + "/account", begin)
        if isinstance(outcome, Response):
            return outcome
        email, pending, secret = outcome
        if pending is None or secret is None:
            left = await provider.factors.recovery_codes_left(email)
            page = pages.message_page(
                "Second factor on",
                f"Every sign-in of {email} needs a one-time code; {left} recovery code(s) left.",
            )
            return self._html(page, csrf=csrf)
        uri = provisioning_uri(secret, email, "keyless " + urlsplit(provider.issuer).netloc)
        page = pages.enrol_page(provider.path + "/account/confirm", csrf, pending,
                                pages.qr_svg(uri), secret)
        return self._html(page, csrf=csrf)

    async def confirm_enrolment(self, request: Request) -> Response:
        """The first code of a pending enrolment: turns the factor on, shows recovery codes."""
        provider = self.provider
        csrf = pages.csrf_token(request.cookies.get(CSRF_COOKIE, ""))
        try:
            form = await self._read_html_form(request)
            self._check_csrf(request, form)
        except FormRefused as exc:
            page = pages.message_page("Request refused", str(exc))
            return self._refusal(request, page, exc.status, str(exc), csrf=csrf)
        pending = form.get("pending", "")
        try:
            email, codes = await grants.confirm_enrolment(
                provider, pending, form.get("code", ""), _remote(request)
            )
        except Pushback as exc:
            page = pages.message_page("Too many attempts", str(exc))
            return self._refusal(request, page, 429, str(exc), csrf=csrf, retry=exc.retry_after)
        except grants.EnrolmentRefused as exc:
            found = await provider.factors.pending(pending)
            if found is None:
                page = pages.message_page("Enrolment expired", str(exc))
                return self._refusal(request, page, 400, str(exc), csrf=csrf)
            email, secret = found
            uri = provisioning_uri(secret, email, "keyless " + urlsplit(provider.issuer).netloc)
            page = pages.enrol_page(provider.path + "/account/confirm", csrf, pending,
                                    pages.qr_svg(uri), secret, error=str(exc))
            return self._refusal(request, page, 400, str(exc), csrf=csrf)
        return self._html(pages.recovery_page(email, codes), csrf=csrf)

    # -- security keys and passkeys (WebAuthn) ---------------------------------------------

    async def webauthn_script(self, request: Request) -> Response:
        """The one script of the provider's pages (security key ceremonies)."""
        return Response(_WEBAUTHN_JS, media_type="text/javascript; charset=utf-8",
                        headers={"Cache-Control": "max-age=300", "X-Content-Type-Options":
                                 "nosniff"})

    async def account_keys(self, request: Request) -> Response:
        """Sign in (password and, if any, one-time code) to register a security key."""
        provider = self.provider
        action = provider.path + "/account/keys"

        async def options(form: dict[str, str]) -> tuple[str, str]:
            email = await grants.authenticate_user(
                provider, form.get("username", ""), form.get("password", ""), _remote(request),
                otp=form.get("otp") or None, enrolling=True,
            )
            return await provider.passkeys.registration_options(email)

        csrf, outcome = await self._account_sign_in(request, action, options)
        if isinstance(outcome, Response):
            return outcome
        found, handle = outcome
        page = pages.key_register_page(provider.path + "/static/webauthn.js",
                                       action + "/register", csrf, handle, found)
        return self._html(page, csrf=csrf)

    async def _json_form(self, request: Request) -> dict[str, str]:
        form = await self._read_html_form(request)
        self._check_csrf(request, form)
        return form

    async def register_key(self, request: Request) -> Response:
        """The new credential from ``navigator.credentials.create`` (JSON answer)."""
        try:
            form = await self._json_form(request)
            email = await self.provider.passkeys.register(form.get("handle", ""),
                                                          form.get("credential", ""))
        except FormRefused as exc:
            return _json_error(exc.status, str(exc))
        except Error as exc:
            return _json_error(400, str(exc))
        return json_response({"email": email}, 200, NO_STORE)

    async def key_options(self, request: Request) -> Response:
        """Sign-in options for the e-mail typed on the login page (JSON answer)."""
        provider = self.provider
        try:
            form = await self._json_form(request)
            await provider.key_challenges.take("ip:" + _remote(request))
            username = form.get("username", "")
            if not 3 <= len(username) <= 320:
                raise InvalidInput("type your e-mail address first")
            options, handle = await provider.passkeys.authentication_options(username)
        except FormRefused as exc:
            return _json_error(exc.status, str(exc))
        except Pushback as exc:
            return _json_error(429, str(exc))
        except Error as exc:
            return _json_error(400, str(exc))
        return json_response({"options": options, "handle": handle}, 200, NO_STORE)

    async def key_login(self, request: Request) -> Response:
        """The assertion from ``navigator.credentials.get`` plus the original request's fields:
        verify it and answer where to send the browser (JSON)."""
        provider = self.provider
        try:
            form = await self._json_form(request)
            auth = AuthorizationRequest.parse(
                {k: v for k, v in form.items() if k in FORM_PARAMETERS}, provider.clients)
            async with provider.limiter.attempt(None, _remote(request)) as attempt:
                email, amr = await provider.passkeys.authenticate(form.get("handle", ""),
                                                                  form.get("credential", ""))
                attempt.succeeded()
        except FormRefused as exc:
            return _json_error(exc.status, str(exc))
        except Pushback as exc:
            return _json_error(429, str(exc))
        except (UnsafeRequest, RedirectableError) as exc:
            return _json_error(400, str(exc))
        except Unauthenticated as exc:
            return _json_error(401, str(exc))
        except Error as exc:
            return _json_error(400, str(exc))
        grants.audit.info("sign-in", extra={"user": email, "client": _remote(request),
                                            "amr": amr})
        code = await grants.issue_authorization_code(provider, auth, email, amr=amr)
        if auth.redirect_uri == OOB_REDIRECT:
            return _json_error(400, "security keys cannot finish out-of-band sign-ins yet")
        result = {"code": code, **({"state": auth.state} if auth.state is not None else {})}
        return json_response({"redirect": _add_query(auth.redirect_uri, result)}, 200, NO_STORE)

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
            info = await grants.userinfo(self.provider, token)
        except Unauthenticated as exc:
            return refused(str(exc))
        return json_response(info, 200, NO_STORE)


_WEBAUTHN_JS = (
    resources.files("keyless.services.oidc").joinpath("static/webauthn.js").read_bytes()
)


def _json_error(status: int, message: str) -> Response:
    return json_response({"code": status, "message": message}, status, NO_STORE)


def _oauth_refusal(exc: Error) -> Response:
    """The RFC 6749 §5.2 answer of the token and device endpoints to a refused request."""
    if isinstance(exc, OAuthError):
        return oauth_error_response(exc)
    if isinstance(exc, Pushback):
        retry = {"Retry-After": _retry_after(exc.retry_after)}
        return oauth_error_response(OAuthError("temporarily_unavailable", str(exc), 429, retry))
    return oauth_error_response(as_oauth_error(exc))


def _remote(request: Request) -> str:
    return request.client.host if request.client else "unknown"


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


def _add_query(uri: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
