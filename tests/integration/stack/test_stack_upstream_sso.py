"""Company single sign-on (issue #18): a keyless instance offers "Sign in with Example Corp",
where Example Corp is a second, real ``keyless serve`` acting as the upstream OpenID provider.
Driven in headless Chromium; the resulting token signs an artifact."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import jwt
import pytest
from browserutil import chromium_page, pkce, screenshot_dir
from stackutil import KEYLESS, RunningStack, free_port, start_stack

from browsers import callback_listener

pytestmark = pytest.mark.integration

ERIN, MALLORY, PASSWORD = "erin@corp.example", "mallory@elsewhere.example", "upstream-pass"
SECRET = "downstream-client-secret"


def _config(data: Path, text: str) -> None:
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(data / "keyless.toml", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningStack, RunningStack]]:
    tmp = tmp_path_factory.mktemp("sso")
    up_port, down_port = free_port(), free_port()
    callback = f"http://localhost:{down_port}/oidc/upstream/callback"
    _config(tmp / "up", "".join(
        f'[[oidc_users]]\nemail = "{u}"\npassword = "{PASSWORD}"\n' for u in (ERIN, MALLORY)
    ) + f'[[oidc_clients]]\nclient_id = "keyless-downstream"\nsecret = "{SECRET}"\n'
        f'redirect_uris = ["{callback}"]\n')
    _config(tmp / "down", (
        '[[oidc_upstreams]]\nname = "corp"\ndisplay_name = "Example Corp"\n'
        f'issuer = "http://localhost:{up_port}/oidc"\nclient_id = "keyless-downstream"\n'
        f'client_secret = "{SECRET}"\nallowed_domains = ["corp.example"]\n'
        '[[oidc_upstreams]]\nname = "strict"\ndisplay_name = "Strict Corp"\n'
        f'issuer = "http://localhost:{up_port}/oidc"\nclient_id = "keyless-downstream"\n'
        f'client_secret = "{SECRET}"\nrequire_acr = ["urn:example:mfa"]\n'))
    upstream = start_stack(tmp / "up", port=up_port, users=())
    try:
        downstream = start_stack(tmp / "down", port=down_port, users=())
        try:
            yield upstream, downstream
        finally:
            assert downstream.stop() == 0, downstream.output()[-3000:]
    finally:
        assert upstream.stop() == 0, upstream.output()[-3000:]


async def _sign_in_upstream(
    downstream: RunningStack, user: str, provider: str = "Example Corp"
) -> tuple[list[str], str, str]:
    """Go through downstream → "Sign in with Example Corp" → upstream login → back; returns
    the loopback callback paths seen, the PKCE verifier and the redirect URI."""
    verifier, challenge = pkce()
    async with chromium_page() as page:
        with callback_listener() as (redirect_uri, seen):
            params = {"response_type": "code", "client_id": "sigstore", "scope": "openid email",
                      "redirect_uri": redirect_uri, "code_challenge": challenge,
                      "code_challenge_method": "S256", "state": "s-9", "nonce": "n-9"}
            query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
            await page.goto(f"{downstream.url}/oidc/auth?{query}")
            target = screenshot_dir()
            if target is not None and user == ERIN:
                await page.screenshot(path=str(target / "login-sso.png"))
            async with page.expect_navigation():
                await page.click(f"text=Sign in with {provider}")
            assert "Sign in" in await page.title()  # the upstream's own sign-in page
            await page.fill("#username", user)
            await page.fill("#password", PASSWORD)
            await page.click("#submit")
            await page.wait_for_load_state()
            body = await page.inner_text("body")
        return [p for p in seen if p.startswith("/auth/callback?")] + [body], verifier, \
            redirect_uri


async def test_a_user_of_the_upstream_provider_gets_a_keyless_token_and_signs(
    pair: tuple[RunningStack, RunningStack], tmp_path: Path
) -> None:
    upstream, downstream = pair
    seen, verifier, redirect_uri = await _sign_in_upstream(downstream, ERIN)
    callback = seen[0]
    query = parse_qs(urlsplit(callback).query)
    assert query["state"] == ["s-9"]
    answer = httpx.post(f"{downstream.url}/oidc/token", timeout=10, data={
        "grant_type": "authorization_code", "client_id": "sigstore", "code": query["code"][0],
        "redirect_uri": redirect_uri, "code_verifier": verifier})
    assert answer.status_code == 200, answer.text
    token = answer.json()["id_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == f"{downstream.url}/oidc" and claims["email"] == ERIN
    assert claims["idp"] == f"{upstream.url}/oidc"
    artifact = tmp_path / "sso.txt"
    artifact.write_bytes(b"signed through company single sign-on\n")
    signed = subprocess.run(
        [str(KEYLESS), "sign", str(artifact), "--identity-token", token,
         "--server", downstream.url], capture_output=True, text=True, timeout=120, check=False)
    assert signed.returncode == 0, signed.stderr
    bundle = json.loads((tmp_path / "sso.txt.sigstore.json").read_text())
    assert bundle["verificationMaterial"]["tlogEntries"]


async def test_an_email_outside_the_allowed_domains_is_refused(
    pair: tuple[RunningStack, RunningStack]
) -> None:
    _upstream, downstream = pair
    seen, _verifier, _redirect = await _sign_in_upstream(downstream, MALLORY)
    assert len(seen) == 1  # no callback reached the client
    assert "elsewhere.example" in seen[0] and "not allowed" in seen[0]


def test_a_forged_or_replayed_callback_is_refused(
    pair: tuple[RunningStack, RunningStack]
) -> None:
    _upstream, downstream = pair
    for query in ("state=" + "a" * 32 + "&code=x", "code=x", "state=x&code=y",
                  "error=access_denied&state=z"):
        answer = httpx.get(f"{downstream.url}/oidc/upstream/callback?{query}", timeout=10)
        assert 400 <= answer.status_code < 500, (query, answer.text)
    assert httpx.get(f"{downstream.url}/oidc/upstream/nope?client_id=sigstore",
                     timeout=10).status_code == 400


async def test_an_upstream_without_the_required_acr_is_refused(
    pair: tuple[RunningStack, RunningStack]
) -> None:
    _upstream, downstream = pair
    seen, _verifier, _redirect = await _sign_in_upstream(downstream, ERIN, "Strict Corp")
    assert len(seen) == 1  # no callback reached the client
    assert "urn:example:mfa" in seen[0] and "acr" in seen[0]
