"""Client-side helpers for the OIDC integration tests: PKCE, form scraping, verifiers."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from urllib.parse import urlencode

import httpx

from keyless.identity import IdentityVerifier, IssuerConfig

_INPUT = re.compile(r'<input type=hidden name="([^"]+)" value="([^"]*)">')
_ACTION = re.compile(r'<form method=post action="([^"]+)"')


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge) per RFC 7636 §4.1-§4.2."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def auth_url(issuer: str, redirect_uri: str, challenge: str, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": "sigstore",
        "scope": "openid email",
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st-" + secrets.token_hex(4),
        "nonce": "n-" + secrets.token_hex(4),
        **extra,
    }
    return issuer + "/auth?" + urlencode(params)


def hidden_fields(page: str) -> dict[str, str]:
    return {html.unescape(k): html.unescape(v) for k, v in _INPUT.findall(page)}


def form_action(base: str, page: str) -> str:
    match = _ACTION.search(page)
    assert match, page
    return base + html.unescape(match.group(1))


async def submit_login(
    client: httpx.AsyncClient, base: str, url: str, username: str, password: str
) -> httpx.Response:
    """Behave like a browser: load the sign-in page (gets the CSRF cookie), post the form."""
    page = await client.get(url)
    assert page.status_code == 200, page.text
    data = {**hidden_fields(page.text), "username": username, "password": password}
    return await client.post(form_action(base, page.text), data=data, headers={"Origin": base})


def verifier_for(*configs: IssuerConfig) -> IdentityVerifier:
    return IdentityVerifier(configs, httpx.AsyncClient(timeout=10))
