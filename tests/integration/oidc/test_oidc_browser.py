"""The sign-in and device pages in real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oidc_flows import auth_url, pkce, verifier_for
from oidc_server import RunningProvider, provider_factory_fixture  # noqa: F401

from browsers import CHROMIUM, CHROMIUM_ARGS, callback_listener
from conftest import require
from keyless.services.oidc import OidcUser

pytestmark = pytest.mark.integration

CAROL = OidcUser.parse("carol@example.com:correct horse")


@pytest.fixture
async def browser_page() -> AsyncIterator[object]:
    require(CHROMIUM.exists(), "Debian chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await browser.new_context()
        yield await context.new_page()
        await browser.close()


async def test_login_page_in_chromium(
    provider_factory: Callable[..., RunningProvider], browser_page: object
) -> None:
    from playwright.async_api import Page

    page = browser_page
    assert isinstance(page, Page)
    idp = provider_factory(users=[CAROL])
    verifier, challenge = pkce()
    with callback_listener() as (redirect_uri, seen):
        await page.goto(auth_url(idp.issuer, redirect_uri, challenge, state="s-1"))
        assert "Sign in" in await page.title()
        cookies = {c["name"]: c for c in await page.context.cookies()}
        csrf = cookies["keyless_oidc_csrf"]
        assert csrf["httpOnly"] and csrf["sameSite"] == "Strict"

        await page.fill("#username", "carol@example.com")
        await page.fill("#password", "wrong password")
        await page.click("#submit")
        assert "wrong email or password" in await page.inner_text("#error")
        assert not seen

        await page.fill("#username", "carol@example.com")
        await page.fill("#password", "correct horse")
        async with page.expect_navigation(url=redirect_uri + "?**"):
            await page.click("#submit")
        assert "signed in" in await page.content()
    callbacks = [path for path in seen if path.startswith("/auth/callback?")]
    assert len(callbacks) == 1  # the browser may also ask the listener for /favicon.ico
    query = parse_qs(urlsplit(callbacks[0]).query)
    assert query["state"] == ["s-1"]
    async with httpx.AsyncClient() as client:
        response = await client.post(
            idp.issuer + "/token",
            data={
                "grant_type": "authorization_code",
                "redirect_uri": redirect_uri,
                "code": query["code"][0],
                "code_verifier": verifier,
            },
            auth=("sigstore", ""),
        )
    assert response.status_code == 200, response.text
    identity = await verifier_for(*idp.provider.issuer_configs()).verify(
        response.json()["access_token"]
    )
    assert identity.subject_alternative_name == "carol@example.com"


async def test_device_page_in_chromium(
    provider_factory: Callable[..., RunningProvider], browser_page: object
) -> None:
    from playwright.async_api import Page

    page = browser_page
    assert isinstance(page, Page)
    idp = provider_factory(users=[CAROL], device_interval=1)
    async with httpx.AsyncClient() as client:
        grant = (
            await client.post(idp.issuer + "/device/code", data={"client_id": "sigstore"})
        ).json()
        await page.goto(grant["verification_uri"])
        await page.fill("#user_code", grant["user_code"])
        await page.fill("#username", "carol@example.com")
        await page.fill("#password", "correct horse")
        await page.click("#submit")
        assert "Device approved" in await page.inner_text("h1")
        response = await client.post(
            idp.issuer + "/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": grant["device_code"],
                "client_id": "sigstore",
            },
        )
    assert response.status_code == 200, response.text


def test_keyless_browser_flow_with_chromium(
    provider_factory: Callable[..., RunningProvider],
) -> None:
    """keyless.oidc's browser flow, with Chromium as the user's browser: loopback + PKCE."""
    require(CHROMIUM.exists(), "Debian chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from keyless.oidc import get_identity_token

    idp = provider_factory(users=[CAROL])
    errors: list[BaseException] = []

    def browse(url: str) -> None:
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                page = browser.new_page()
                page.goto(url)
                page.fill("#username", "carol@example.com")
                page.fill("#password", "correct horse")
                with page.expect_navigation(url="http://127.0.0.1:*/auth/callback?**"):
                    page.click("#submit")
                assert "signed in" in page.content()
                browser.close()
        except BaseException as exc:
            errors.append(exc)

    threads: list[threading.Thread] = []

    def open_browser(url: str) -> bool:
        threads.append(threading.Thread(target=browse, args=(url,), daemon=True))
        threads[0].start()
        return True

    token = get_identity_token(
        issuer=idp.issuer,
        ambient=None,
        interactive="browser",
        open_browser=open_browser,
        out=lambda message: None,
    )
    threads[0].join(30)
    assert not errors, errors
    assert token.identity == "carol@example.com" and token.issuer == idp.issuer
