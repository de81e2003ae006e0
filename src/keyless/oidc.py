"""Getting an identity token for signing, the way Sigstore clients do (contracts.md §4).

Precedence (as sigstore-python, interop.md §3.1): an explicit token; ambient CI credentials
through the ``id`` package (GitHub Actions, GitLab, Buildkite, Google Cloud, CircleCI); then an
interactive flow against the signing config's OIDC issuer — the browser flow (authorization code
+ PKCE, RFC 7636, with a loopback redirect, RFC 8252 §7.3) when a browser can be opened, else the
device authorization grant (RFC 8628) when the issuer offers it, else the browser URL is printed
and the loopback redirect awaited.

Every token is sanity-checked locally before use (:func:`check_token`): the CA does the real
verification, but a client that notices an expired token or one from another issuer can say so
in one clear sentence instead of forwarding it to fail remotely.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import secrets
import sys
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from keyless.errors import Unauthenticated, Unavailable

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEVICE_GRANT",
    "DeviceCode",
    "IdentityToken",
    "Interactive",
    "OidcClient",
    "check_token",
    "detect_ambient",
    "get_identity_token",
]

DEFAULT_CLIENT_ID = "sigstore"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
Interactive = Literal["auto", "browser", "device", "none"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class IdentityToken:
    """A raw JWT with its (unverified) claims; only the CA can verify the signature."""

    raw: str
    claims: dict[str, Any]

    @classmethod
    def parse(cls, raw: str) -> IdentityToken:
        """Decode the claims of a compact JWS without verifying it (RFC 7519 §7.2 steps 1-8)."""
        raw = raw.strip()
        parts = raw.split(".")
        if len(parts) != 3 or not all(parts[:2]):
            raise Unauthenticated("the identity token is not a JWT (three dot-separated parts)")
        try:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except ValueError as exc:
            raise Unauthenticated("the identity token's claims are not base64url JSON") from exc
        if not isinstance(claims, dict):
            raise Unauthenticated("the identity token's claims are not a JSON object")
        return cls(raw, claims)

    @property
    def issuer(self) -> str:
        return str(self.claims.get("iss", ""))

    @property
    def identity(self) -> str:
        """Whom the certificate will name: the email if the token has one, else ``sub``."""
        return str(self.claims.get("email") or self.claims.get("sub", ""))

    @property
    def expires_at(self) -> float:
        exp = self.claims.get("exp")
        return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else 0.0

    def __str__(self) -> str:
        return self.raw


def _issuer_matches(issuer: str, pattern: str) -> bool:
    if "*" not in pattern:
        return issuer.rstrip("/") == pattern.rstrip("/")
    regex = "[-_a-zA-Z0-9]+".join(re.escape(p) for p in pattern.split("*"))
    return re.fullmatch(regex, issuer) is not None


def check_token(
    token: str | IdentityToken,
    *,
    issuers: Sequence[str] = (),
    client_id: str = DEFAULT_CLIENT_ID,
    clock: Callable[[], float] = time.time,
    leeway: float = 5.0,
) -> IdentityToken:
    """Local sanity check before sending the token to the CA; raises :class:`Unauthenticated`.

    ``issuers`` (exact URLs or ``*`` patterns) are the issuers the instance is known to accept —
    at least the signing config's OIDC URL; empty skips the issuer check. Checks the claims
    sigstore-python requires (interop.md §5 item 12): ``iss``, ``sub``, ``aud`` containing the
    client id, ``exp`` not passed, ``iat`` not in the future.
    """
    parsed = token if isinstance(token, IdentityToken) else IdentityToken.parse(token)
    claims = parsed.claims
    for name in ("iss", "sub", "aud", "exp", "iat"):
        if name not in claims:
            raise Unauthenticated(f"the identity token has no {name!r} claim")
    audience = claims["aud"]
    audiences = audience if isinstance(audience, list) else [audience]
    if client_id not in audiences:
        raise Unauthenticated(
            f"the identity token is for audience {audience!r}, not {client_id!r}; "
            f"request it for client {client_id!r}"
        )
    now = clock()
    if parsed.expires_at + leeway < now:
        raise Unauthenticated(
            f"the identity token expired at {_utc(parsed.expires_at)} "
            f"({int(now - parsed.expires_at)} s ago); get a fresh one"
        )
    iat = claims["iat"]
    if isinstance(iat, int | float) and iat > now + leeway:
        raise Unauthenticated("the identity token was issued in the future; check this clock")
    if issuers and not any(_issuer_matches(parsed.issuer, p) for p in issuers):
        raise Unauthenticated(
            f"the identity token was issued by {parsed.issuer!r}, but this instance expects "
            f"{' or '.join(repr(i) for i in issuers)}; get a token from that issuer"
        )
    return parsed


def detect_ambient(client_id: str = DEFAULT_CLIENT_ID) -> str | None:
    """An ambient CI credential for audience ``client_id`` (``id`` package), or ``None``."""
    import id as ambient_id

    try:
        token: str | None = ambient_id.detect_credential(audience=client_id)
    except ambient_id.IdentityError as exc:
        raise Unauthenticated(f"ambient CI credentials were found but unusable: {exc}") from exc
    return token


# -- the interactive flows -----------------------------------------------------------------


@dataclass(frozen=True)
class DeviceCode:
    """What the user must do to approve a device flow (RFC 8628 §3.2)."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Callback(HTTPServer):
    result: dict[str, list[str]] | None = None
    arrived: threading.Event


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _Callback

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/auth/callback":
            self.send_error(404)
            return
        self.server.result = parse_qs(parts.query)
        self.server.arrived.set()
        body = b"keyless: signed in. You can close this window and return to the terminal.\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the terminal belongs to the user's command."""


@contextlib.contextmanager
def _loopback_listener() -> Iterator[_Callback]:
    server = _Callback(("127.0.0.1", 0), _CallbackHandler)
    server.arrived = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class OidcClient:
    """Interactive token acquisition from one OpenID Connect issuer (sync, for the CLI)."""

    def __init__(
        self,
        issuer: str,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = "",
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        out: Callable[[str], None] = _print,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self._http = http or httpx.Client(timeout=30.0)
        self._clock = clock
        self._sleep = sleep
        self._out = out
        self._metadata: dict[str, Any] | None = None

    def metadata(self) -> dict[str, Any]:
        """The issuer's discovery document (OIDC Discovery §4), checked for its ``issuer``."""
        if self._metadata is None:
            url = self.issuer + "/.well-known/openid-configuration"
            doc = self._json(self._request("GET", url), "discovery document")
            if str(doc.get("issuer", "")).rstrip("/") != self.issuer:
                raise Unauthenticated(
                    f"{url} names issuer {doc.get('issuer')!r}, not {self.issuer!r}"
                )
            self._metadata = doc
        return self._metadata

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach the identity provider at {url}: {exc}") from exc

    @staticmethod
    def _json(response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise Unauthenticated(f"the {what} is not JSON (HTTP {response.status_code})")
        if response.status_code >= 400 and "error" not in body:
            raise Unauthenticated(f"the {what} failed with HTTP {response.status_code}")
        return body

    def _token_request(self, data: dict[str, str]) -> dict[str, Any]:
        endpoint = self.metadata().get("token_endpoint")
        if not isinstance(endpoint, str):
            raise Unauthenticated(f"issuer {self.issuer} has no token_endpoint")
        # RFC 6749 §2.3.1: HTTP Basic, even with the empty secret of a public client.
        response = self._request(
            "POST", endpoint, data=data, auth=(self.client_id, self.client_secret)
        )
        return self._json(response, "token response")

    def _identity_token(self, body: dict[str, Any], nonce: str | None = None) -> IdentityToken:
        """Prefer the OIDC ``id_token``; fall back to a JWT ``access_token`` (Dex/keyless)."""
        if "error" in body:
            description = body.get("error_description") or body["error"]
            raise Unauthenticated(f"the identity provider refused: {description}")
        raw = body.get("id_token") or body.get("access_token")
        if not isinstance(raw, str):
            raise Unauthenticated("the token response has no id_token")
        token = IdentityToken.parse(raw)
        if nonce is not None and "nonce" in token.claims and token.claims["nonce"] != nonce:
            raise Unauthenticated("the identity token's nonce does not match the request")
        return token

    # RFC 6749 §4.1 + RFC 7636 + RFC 8252 ------------------------------------------------

    def browser_flow(
        self,
        open_browser: Callable[[str], bool] = webbrowser.open,
        timeout: float = 300.0,
        fallback: Callable[[], IdentityToken] | None = None,
    ) -> IdentityToken:
        """Authorization code + PKCE with a loopback redirect (RFC 8252 §7.3).

        If no browser can be opened, ``fallback`` (the device flow) is used when given, else
        the URL is printed. Blocks until the redirect arrives or ``timeout`` passes.
        """
        meta = self.metadata()
        endpoint = meta.get("authorization_endpoint")
        if not isinstance(endpoint, str):
            raise Unauthenticated(f"issuer {self.issuer} has no authorization_endpoint")
        verifier = secrets.token_urlsafe(48)
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        with _loopback_listener() as listener:
            redirect_uri = f"http://127.0.0.1:{listener.server_address[1]}/auth/callback"
            params = {
                "response_type": "code",
                "client_id": self.client_id,
                "scope": "openid email",
                "redirect_uri": redirect_uri,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "state": state,
                "nonce": nonce,
            }
            url = endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)
            if open_browser(url):
                self._out("Waiting for you to sign in in the browser...")
            elif fallback is not None:
                return fallback()
            else:
                self._out(f"Open this link in a browser on this machine to sign in:\n\n\t{url}\n")
            if not listener.arrived.wait(timeout):
                raise Unauthenticated(f"no sign-in completed within {int(timeout)} s")
            result = listener.result or {}
        if result.get("state", [None])[0] != state:
            raise Unauthenticated("the sign-in response's state does not match (possible CSRF)")
        if "error" in result:
            detail = result.get("error_description", result["error"])[0]
            raise Unauthenticated(f"sign-in failed: {detail}")
        code = result.get("code", [""])[0]
        if not code:
            raise Unauthenticated("the sign-in response has no authorization code")
        body = self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            }
        )
        return self._identity_token(body, nonce)

    # RFC 8628 --------------------------------------------------------------------------------

    def supports_device_flow(self) -> bool:
        return isinstance(self.metadata().get("device_authorization_endpoint"), str)

    def device_flow(self, show: Callable[[DeviceCode], None] | None = None) -> IdentityToken:
        """The device authorization grant: show the code, poll until approved (RFC 8628 §3.4)."""
        endpoint = self.metadata().get("device_authorization_endpoint")
        if not isinstance(endpoint, str):
            raise Unauthenticated(f"issuer {self.issuer} does not offer the device flow")
        response = self._request(
            "POST",
            endpoint,
            data={"client_id": self.client_id, "scope": "openid email"},
            auth=(self.client_id, self.client_secret) if self.client_secret else None,
        )
        start = self._json(response, "device authorization")
        if "error" in start:
            raise Unauthenticated(f"device authorization refused: {start['error']}")
        try:
            device = DeviceCode(
                user_code=str(start["user_code"]),
                verification_uri=str(start["verification_uri"]),
                verification_uri_complete=start.get("verification_uri_complete"),
                expires_in=int(start.get("expires_in", 600)),
                interval=int(start.get("interval", 5)),
            )
            device_code = str(start["device_code"])
        except (KeyError, TypeError, ValueError) as exc:
            raise Unauthenticated("the device authorization response is incomplete") from exc
        (show or self._show_device_code)(device)
        interval = max(1, device.interval)
        deadline = self._clock() + device.expires_in
        while self._clock() < deadline:
            self._sleep(interval)
            body = self._token_request(
                {
                    "grant_type": DEVICE_GRANT,
                    "device_code": device_code,
                    "client_id": self.client_id,
                }
            )
            error = body.get("error")
            if error == "authorization_pending":
                continue
            if error == "slow_down":
                interval += 5  # RFC 8628 §3.5
                continue
            if error == "access_denied":
                raise Unauthenticated("the sign-in request was denied")
            if error == "expired_token":
                break
            return self._identity_token(body)
        raise Unauthenticated("the device code expired before it was approved; start again")

    def _show_device_code(self, device: DeviceCode) -> None:
        if device.verification_uri_complete:
            self._out(
                f"To sign in, open {device.verification_uri_complete}\n"
                f"and check that it shows the code {device.user_code}."
            )
        else:
            self._out(f"To sign in, open {device.verification_uri} and enter {device.user_code}.")


def get_identity_token(
    *,
    explicit: str | None = None,
    issuer: str | None = None,
    accepted_issuers: Sequence[str] = (),
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = "",
    ambient: Callable[[str], str | None] | None = detect_ambient,
    interactive: Interactive = "auto",
    open_browser: Callable[[str], bool] = webbrowser.open,
    http: httpx.Client | None = None,
    clock: Callable[[], float] = time.time,
    out: Callable[[str], None] = _print,
) -> IdentityToken:
    """A checked identity token, by the precedence of contracts.md §4.

    ``issuer`` is the signing config's OIDC URL (for the interactive flows). Explicit and
    ambient tokens must come from ``accepted_issuers`` if given; interactive tokens must come
    from ``issuer`` itself.
    """
    if explicit:
        return check_token(explicit, issuers=accepted_issuers, client_id=client_id, clock=clock)
    if ambient is not None:
        found = ambient(client_id)
        if found:
            return check_token(found, issuers=accepted_issuers, client_id=client_id, clock=clock)
    if interactive == "none" or issuer is None:
        raise Unauthenticated(
            "no identity token: pass --identity-token (or set SIGSTORE_ID_TOKEN), run in CI "
            "with OIDC credentials, "
            "or allow an interactive sign-in"
        )
    client = OidcClient(
        issuer, client_id=client_id, client_secret=client_secret, http=http, clock=clock, out=out
    )
    if interactive == "device":
        token = client.device_flow()
    elif interactive == "browser":
        token = client.browser_flow(open_browser)
    else:
        token = _auto_flow(client, open_browser)
    return check_token(token, issuers=[issuer], client_id=client_id, clock=clock)


def _auto_flow(client: OidcClient, open_browser: Callable[[str], bool]) -> IdentityToken:
    """Browser if one opens; else the device flow if offered; else print the browser URL."""
    fallback = client.device_flow if client.supports_device_flow() else None
    return client.browser_flow(open_browser, fallback=fallback)
