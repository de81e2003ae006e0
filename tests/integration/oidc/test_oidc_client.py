"""keyless.oidc (client token acquisition) against a running embedded provider."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from oidc_flows import form_action, hidden_fields
from oidc_server import RunningProvider, provider_factory_fixture  # noqa: F401

from keyless.errors import Unauthenticated
from keyless.oidc import DeviceCode, OidcClient, get_identity_token
from keyless.services.oidc import OidcUser

pytestmark = pytest.mark.integration

DAVE = OidcUser.parse("dave@example.com:pa55word")
Factory = Callable[..., RunningProvider]


@pytest.fixture
def idp(provider_factory: Factory) -> RunningProvider:
    return provider_factory(users=[DAVE], device_interval=1)


def password_token(idp: RunningProvider) -> str:
    body = httpx.post(
        idp.issuer + "/token",
        data={
            "grant_type": "password",
            "client_id": "sigstore",
            "username": "dave@example.com",
            "password": "pa55word",
        },
    ).json()
    return str(body["id_token"])


def fake_browser(base: str, errors: list[BaseException]) -> Callable[[str], bool]:
    """Stands in for the user's browser: signs in on the page and follows the redirect."""

    def sign_in(url: str) -> None:
        try:
            with httpx.Client(follow_redirects=True) as browser:
                page = browser.get(url)
                data = {
                    **hidden_fields(page.text),
                    "username": "dave@example.com",
                    "password": "pa55word",
                }
                done = browser.post(
                    form_action(base, page.text), data=data, headers={"Origin": base}
                )
                assert done.status_code == 200 and "signed in" in done.text
        except BaseException as exc:  # surfaced by the test
            errors.append(exc)

    def open_browser(url: str) -> bool:
        threading.Thread(target=sign_in, args=(url,), daemon=True).start()
        return True

    return open_browser


def test_browser_flow(idp: RunningProvider) -> None:
    errors: list[BaseException] = []
    messages: list[str] = []
    token = get_identity_token(
        issuer=idp.issuer,
        ambient=None,
        interactive="browser",
        open_browser=fake_browser(idp.base, errors),
        out=messages.append,
    )
    assert not errors
    assert token.identity == "dave@example.com"
    assert token.issuer == idp.issuer
    assert "browser" in messages[0]


def test_auto_falls_back_to_device_flow_without_browser(idp: RunningProvider) -> None:
    shown: list[DeviceCode] = []

    def approve(device: DeviceCode) -> None:
        shown.append(device)

        def run() -> None:
            with httpx.Client() as browser:
                page = browser.get(device.verification_uri_complete or "")
                data = {
                    **hidden_fields(page.text),
                    "user_code": device.user_code,
                    "username": "dave@example.com",
                    "password": "pa55word",
                }
                browser.post(form_action(idp.base, page.text), data=data)

        threading.Thread(target=run, daemon=True).start()

    client = OidcClient(idp.issuer)
    assert client.supports_device_flow()
    token = client.browser_flow(lambda url: False, fallback=lambda: client.device_flow(approve))
    assert shown and token.identity == "dave@example.com"


def test_device_flow_expires(provider_factory: Factory) -> None:
    idp = provider_factory(users=[DAVE], device_interval=1, device_lifetime=2)
    client = OidcClient(idp.issuer)
    with pytest.raises(Unauthenticated, match="expired"):
        client.device_flow(lambda device: None)


def test_explicit_token_checked_against_issuer(idp: RunningProvider) -> None:
    raw = password_token(idp)
    token = get_identity_token(explicit=raw, accepted_issuers=[idp.issuer], ambient=None)
    assert token.raw == raw
    with pytest.raises(Unauthenticated, match="expects"):
        get_identity_token(explicit=raw, accepted_issuers=["https://other.example"], ambient=None)
    with pytest.raises(Unauthenticated, match="expired"):
        get_identity_token(explicit=raw, ambient=None, clock=lambda: 4_000_000_000)
    with pytest.raises(Unauthenticated, match="no identity token"):
        get_identity_token(ambient=None, interactive="none", issuer=idp.issuer)


@pytest.fixture
def github_actions(idp: RunningProvider, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A local stand-in for the GitHub Actions token service that the ``id`` package calls."""
    requests: list[str] = []
    token = password_token(idp)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            assert self.headers["Authorization"] == "bearer request-token"
            body = json.dumps({"value": token}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token")
    monkeypatch.setenv(
        "ACTIONS_ID_TOKEN_REQUEST_URL", f"http://127.0.0.1:{server.server_address[1]}/token?x=1"
    )
    try:
        yield requests
    finally:
        server.shutdown()
        server.server_close()


def test_ambient_github_credentials_via_id(idp: RunningProvider, github_actions: list[str]) -> None:
    token = get_identity_token(issuer=idp.issuer, accepted_issuers=[idp.issuer], interactive="none")
    assert token.identity == "dave@example.com"
    assert github_actions and "audience=sigstore" in github_actions[0]


def test_auto_mode_without_browser_uses_device_flow(idp: RunningProvider) -> None:
    """get_identity_token's own fallback: no browser opens → the printed device link works."""

    def out(message: str) -> None:
        match = re.search(r"open (\S+)\nand check that it shows the code (\S+)\.", message)
        if not match:
            return
        url, user_code = match.groups()

        def approve() -> None:
            with httpx.Client() as browser:
                page = browser.get(url)
                data = {
                    **hidden_fields(page.text),
                    "user_code": user_code,
                    "username": "dave@example.com",
                    "password": "pa55word",
                }
                browser.post(form_action(idp.base, page.text), data=data)

        threading.Thread(target=approve, daemon=True).start()

    token = get_identity_token(
        issuer=idp.issuer, ambient=None, open_browser=lambda url: False, out=out
    )
    assert token.identity == "dave@example.com"
