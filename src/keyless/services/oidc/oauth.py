"""OAuth 2.0 HTTP plumbing: form bodies, client credentials, §5.2 error answers.

The token and device endpoints speak RFC 6749: errors are ``{"error", "error_description"}``
JSON (RFC 6749 §5.2), ``invalid_client`` with HTTP Basic answers 401 with ``WWW-Authenticate``,
and responses carrying tokens are not cached (§5.1). The same bodies also carry keyless's
``{"code", "message"}`` (contracts.md §5) — OAuth clients ignore members they do not know.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request
from starlette.responses import Response

from keyless.errors import Error, InvalidInput, Pushback, StorageError, Unavailable
from keyless.http.errors import status_for
from keyless.http.requests import read_body
from keyless.services.oidc.grants import OAuthError

MAX_FORM_BYTES = 64 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error_response(exc: OAuthError) -> Response:
    """The RFC 6749 §5.2 answer to ``exc``: its status and headers, never cached."""
    body = {
        "error": exc.error,
        "error_description": exc.description,
        "code": exc.status,
        "message": exc.description,
    }
    return json_response(body, exc.status, {**NO_STORE, **exc.headers})


def json_response(
    body: Mapping[str, object], status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON answer with exactly the given headers."""
    return Response(
        json.dumps(body).encode(),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def parse_form(body: bytes) -> dict[str, str]:
    """Parse ``application/x-www-form-urlencoded``; repeated parameters are refused (§3.1)."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthError("invalid_request", "the request body is not a valid form") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", f"parameter {name!r} is repeated")
        form[name] = value
    return form


async def read_form(request: Request) -> dict[str, str]:
    """Read a bounded form body (RFC 6749 §3.2: the token endpoint takes POSTed forms)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    try:
        body = await read_body(request, MAX_FORM_BYTES)
    except Error as exc:  # too large (413), too slow (408), bad Content-Length (400)
        raise OAuthError("invalid_request", str(exc), status_for(exc)) from exc
    return parse_form(body)


def client_credentials(request: Request, form: Mapping[str, str]) -> tuple[str, str | None, bool]:
    """(client_id, secret or None, used HTTP Basic) from the request (RFC 6749 §2.3.1).

    Using both Basic and body credentials at once is refused (§2.3: MUST NOT use more than one).
    """
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise OAuthError("invalid_client", "client authentication must use HTTP Basic", 401,
                             {"WWW-Authenticate": 'Basic realm="keyless"'})  # fmt: skip
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise OAuthError("invalid_client", "malformed HTTP Basic credentials", 401,
                             {"WWW-Authenticate": 'Basic realm="keyless"'}) from exc  # fmt: skip
        user, sep, password = decoded.partition(":")
        if not sep:
            raise OAuthError("invalid_client", "malformed HTTP Basic credentials", 401,
                             {"WWW-Authenticate": 'Basic realm="keyless"'})  # fmt: skip
        if form.get("client_secret"):
            raise OAuthError("invalid_request", "use one client authentication method, not two")
        client_id = unquote(user)
        if "client_id" in form and form["client_id"] != client_id:
            raise OAuthError("invalid_client", "client_id differs from the authenticated client")
        return client_id, unquote(password), True
    body_id = form.get("client_id")
    if not body_id:
        raise OAuthError("invalid_client", "client_id is required", 401)
    return body_id, form.get("client_secret"), False


def as_oauth_error(exc: Error) -> OAuthError:
    """Map a keyless error raised while serving an OAuth endpoint to an RFC 6749 error."""
    if isinstance(exc, InvalidInput):
        return OAuthError("invalid_request", str(exc))
    status = status_for(exc)
    if isinstance(exc, Pushback | Unavailable | StorageError):
        retry = getattr(exc, "retry_after", 1.0)
        headers = {"Retry-After": str(max(1, math.ceil(retry)))}
        return OAuthError("temporarily_unavailable", str(exc), 503, headers)
    if 400 <= status < 500:
        return OAuthError("invalid_request", str(exc), status)
    return OAuthError("server_error", "the request could not be served", 500)
