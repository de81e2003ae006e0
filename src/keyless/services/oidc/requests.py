"""The authorization request of the code flow, validated (RFC 6749 §4.1.1, RFC 7636 §4.3).

Validation comes in two stages, as RFC 6749 §4.1.2.1 requires: a bad ``client_id`` or
``redirect_uri`` must be shown to the user and never redirected to (that would make the provider
an open redirector); every later error is sent back to the client's redirect URI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from keyless.services.oidc.accounts import OidcClient

OOB_REDIRECT = "urn:ietf:wg:oauth:2.0:oob"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
SUPPORTED_SCOPES = frozenset({"openid", "email", "profile"})
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
#: The request parameters carried through the sign-in form.
FORM_PARAMETERS = (
    "client_id", "redirect_uri", "response_type", "scope", "state", "nonce",
    "code_challenge", "code_challenge_method",
)  # fmt: skip


class UnsafeRequest(Exception):
    """The client or redirect URI is not acceptable: show an error page, do not redirect."""


class RedirectableError(Exception):
    """An authorization error to report to the client's redirect URI (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def redirect_allowed(client: OidcClient, uri: str) -> bool:
    """Exact registered URIs, plus loopback (any port, RFC 8252 §7.3) and OOB for clients
    that allow them (sigstore-python uses ``http://localhost:<port>/auth/callback`` or OOB)."""
    if uri in client.redirect_uris:
        return True
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in uri):
        # RFC 3986 §2 has no whitespace or controls; urlsplit would silently drop CR/LF/TAB
        return False
    if not client.allow_loopback:
        return False
    if uri == OOB_REDIRECT:
        return True
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return False
    return (
        parts.scheme == "http"
        and parts.username is None
        and parts.hostname in LOOPBACK_HOSTS
        and not parts.fragment
    )


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated authorization request."""

    client: OidcClient
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str | None
    params: Mapping[str, str]

    @classmethod
    def parse(
        cls, params: Mapping[str, str], clients: Mapping[str, OidcClient]
    ) -> AuthorizationRequest:
        """Validate; raises :class:`UnsafeRequest` or :class:`RedirectableError`."""
        client = clients.get(params.get("client_id", ""))
        if client is None:
            raise UnsafeRequest("unknown client_id")
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri or not redirect_allowed(client, redirect_uri):
            raise UnsafeRequest("the redirect_uri is not registered for this client")
        if params.get("response_type") != "code":
            raise RedirectableError(
                "unsupported_response_type", "only response_type=code is supported"
            )
        scopes = params.get("scope", "").split()
        if "openid" not in scopes:
            raise RedirectableError("invalid_scope", "the openid scope is required")
        if params.get("prompt") == "none":
            raise RedirectableError("login_required", "this provider always asks to sign in")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        if challenge is None:
            if client.public:
                raise RedirectableError(
                    "invalid_request", "PKCE (code_challenge, S256) is required for public clients"
                )
        elif method != "S256":
            raise RedirectableError("invalid_request", "code_challenge_method must be S256")
        elif not _CHALLENGE.fullmatch(challenge):
            raise RedirectableError("invalid_request", "code_challenge is not a S256 challenge")
        granted = " ".join(s for s in scopes if s in SUPPORTED_SCOPES)
        return cls(
            client=client,
            redirect_uri=redirect_uri,
            scope=granted,
            state=params.get("state"),
            nonce=params.get("nonce"),
            code_challenge=challenge,
            params={k: params[k] for k in FORM_PARAMETERS if k in params},
        )
