"""The log explorer and the TOTP sign-in in real headless Chromium (Debian's, via Playwright),
against a real ``keyless serve`` (issue #18).

With ``KEYLESS_SCREENSHOTS=DIR`` the tests also save the screenshots the docs show.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import jwt
import pyotp
import pytest
from browserutil import (
    ALICE,
    BOB,
    CAROL,
    PASSWORD,
    chromium_page,
    fresh_code,
    password_grant,
    pkce,
    screenshot_dir,
    start_totp_stack,
)
from stackutil import KEYLESS, RunningStack

from browsers import callback_listener

pytestmark = pytest.mark.integration


@dataclass
class Signed:
    stack: RunningStack
    digests: dict[str, str]
    indexes: dict[str, int]


def _sign(stack: RunningStack, tmp: Path, name: str, user: str, version: int) -> int:
    artifact = tmp / f"{name}.txt"
    artifact.write_bytes(f"{name}: signed by {user}\n".encode())
    token = password_grant(stack, user).json()["id_token"]
    done = subprocess.run(
        [str(KEYLESS), "sign", str(artifact), "--identity-token", token, "--server", stack.url,
         "--rekor-version", str(version)], capture_output=True, text=True, timeout=120,
        check=False)
    assert done.returncode == 0, done.stderr
    bundle = json.loads((tmp / f"{name}.txt.sigstore.json").read_text())
    return int(bundle["verificationMaterial"]["tlogEntries"][0]["logIndex"])


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signed]:
    tmp = tmp_path_factory.mktemp("browser")
    stack = start_totp_stack(tmp / "data")
    try:
        indexes = {"alice-v2": _sign(stack, tmp, "alice-v2", ALICE, 2),
                   "alice-v1": _sign(stack, tmp, "alice-v1", ALICE, 1),
                   "bob-v2": _sign(stack, tmp, "bob-v2", BOB, 2)}
        digests = {n: hashlib.sha256((tmp / f"{n}.txt").read_bytes()).hexdigest()
                   for n in indexes}
        deadline = time.monotonic() + 30  # the index is written just after the acknowledgement
        while f"/explorer/entry/rekor-v2/{indexes['bob-v2']}" not in httpx.get(
                stack.url + "/", params={"q": BOB}, timeout=10).text:
            assert time.monotonic() < deadline, stack.output()[-3000:]
            time.sleep(0.1)
        yield Signed(stack, digests, indexes)
    finally:
        assert stack.stop() == 0, stack.output()[-3000:]


async def _shot(page: object, name: str) -> None:
    target = screenshot_dir()
    if target is not None:
        await page.screenshot(path=str(target / name), full_page=True)  # type: ignore[attr-defined]


async def test_searching_an_identity_and_opening_an_entry(signed: Signed) -> None:
    async with chromium_page() as page:
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        await page.goto(signed.stack.url + "/")
        assert "keyless log explorer" in await page.title()
        await page.fill("#q", ALICE)
        async with page.expect_navigation():
            await page.click("#search")
        assert "q=alice%40example.com" in page.url  # a bookmarkable result page
        rows = page.locator("#results tbody tr")
        texts = [await rows.nth(i).inner_text() for i in range(await rows.count())]
        assert len(texts) == 4, texts  # Rekor v1, Rekor v2, and both certificates in the CT log
        assert all(ALICE in t for t in texts) and not any(BOB in t for t in texts)
        assert sum("Rekor v2" in t for t in texts) == 1 and sum("CT log" in t for t in texts) == 2
        await _shot(page, "explorer-search.png")
        href = f"/explorer/entry/rekor-v2/{signed.indexes['alice-v2']}"
        link = page.locator(f'a.entry[href="{href}"]')
        async with page.expect_navigation():
            await link.click()
        assert (await page.inner_text("#proof")).startswith("Verified")
        assert ALICE in await page.inner_text("table.certificate")
        assert signed.digests["alice-v2"] in await page.inner_text("#digest")
        await _shot(page, "explorer-entry.png")
        async with page.expect_download() as download_info:
            await page.click("#download")
        fragment = json.loads(Path(await (await download_info.value).path()).read_text())
        assert fragment["tlogEntries"][0]["logIndex"] == str(signed.indexes["alice-v2"])
        await page.goto(signed.stack.url + "/explorer/status")
        assert "Rekor v1" in await page.inner_text("#logs")
        await _shot(page, "explorer-status.png")
        assert dialogs == []


async def test_searching_a_digest(signed: Signed) -> None:
    async with chromium_page() as page:
        await page.goto(f"{signed.stack.url}/?q=sha256:{signed.digests['alice-v1']}")
        rows = page.locator("#results tbody tr")
        assert await rows.count() == 1
        text = await rows.first.inner_text()
        assert "Rekor v1" in text and str(signed.indexes["alice-v1"]) in text and ALICE in text


HOSTILE = [
    "<img src=x onerror=alert(1)>@example.com",
    "<script>alert(1)</script>@example.com",
    '"><svg onload=alert(1)>@x',
    "javascript:alert(1)//x@y",
]


async def test_hostile_queries_are_shown_as_text_and_never_run(signed: Signed) -> None:
    async with chromium_page() as page:
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        for q in HOSTILE:
            response = await page.goto(f"{signed.stack.url}/?q={quote(q)}")
            assert response is not None and response.status in (200, 400)
            assert await page.locator("img, svg, script").count() == 0, q
            assert await page.input_value("#q") == q
            if response.status == 200:
                assert await page.inner_text("#query") == q
        for raw in ("a" * 100_000 + "@example.com", "%3Cscript%3Ealert(1)%3C/script%3E" * 20,
                    "%ff%fe%00"):
            response = await page.goto(f"{signed.stack.url}/?q={raw}")
            assert response is not None and 400 <= response.status < 500, raw[:40]
            assert await page.locator("script, img").count() == 0
        assert dialogs == []


async def test_totp_sign_in_with_code_and_pkce(signed: Signed) -> None:
    verifier, challenge = pkce()
    async with chromium_page() as page:
        with callback_listener() as (redirect_uri, seen):
            params = {"response_type": "code", "client_id": "sigstore", "scope": "openid email",
                      "redirect_uri": redirect_uri, "code_challenge": challenge,
                      "code_challenge_method": "S256", "state": "s-1", "nonce": "n-1"}
            query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
            await page.goto(f"{signed.stack.url}/oidc/auth?{query}")
            await page.fill("#username", CAROL)
            await page.fill("#password", PASSWORD)
            await _shot(page, "login-totp.png")
            await page.click("#submit")
            assert "one-time code" in await page.inner_text("#error")
            assert not [p for p in seen if p.startswith("/auth/callback?")]
            await page.fill("#username", CAROL)
            await page.fill("#password", PASSWORD)
            await page.fill("#otp", fresh_code())
            async with page.expect_navigation(url=redirect_uri + "?**"):
                await page.click("#submit")
        callback = next(p for p in seen if p.startswith("/auth/callback?"))
    code = parse_qs(urlsplit(callback).query)["code"][0]
    token = httpx.post(f"{signed.stack.url}/oidc/token", timeout=10, data={
        "grant_type": "authorization_code", "client_id": "sigstore", "code": code,
        "redirect_uri": redirect_uri, "code_verifier": verifier})
    assert token.status_code == 200, token.text
    claims = jwt.decode(token.json()["id_token"], options={"verify_signature": False})
    assert claims["email"] == CAROL and claims["amr"] == ["pwd", "otp"]


async def test_totp_device_approval(signed: Signed) -> None:
    grant = httpx.post(f"{signed.stack.url}/oidc/device/code", data={"client_id": "sigstore"},
                       timeout=10).json()
    async with chromium_page() as page:
        await page.goto(grant["verification_uri"])
        await page.fill("#user_code", grant["user_code"])
        await page.fill("#username", CAROL)
        await page.fill("#password", PASSWORD)
        await page.click("#submit")
        assert "one-time code" in await page.inner_text("#error")
        await page.fill("#username", CAROL)
        await page.fill("#password", PASSWORD)
        await page.fill("#otp", fresh_code())
        await page.click("#submit")
        assert "Device approved" in await page.inner_text("h1")
    token = httpx.post(f"{signed.stack.url}/oidc/token", timeout=10, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": grant["device_code"], "client_id": "sigstore"})
    assert token.status_code == 200, token.text
    claims = jwt.decode(token.json()["id_token"], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "otp"]


async def test_enrolling_a_second_factor_in_the_browser(signed: Signed) -> None:
    async with chromium_page() as page:
        await page.goto(f"{signed.stack.url}/oidc/account")
        await page.fill("#username", BOB)
        await page.fill("#password", PASSWORD)
        await page.click("#submit")
        assert await page.locator("#qr svg").count() == 1  # rendered here, no external image
        secret = (await page.inner_text("#secret")).replace(" ", "")
        await _shot(page, "enrol-totp.png")
        await page.fill("#code", "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
        await page.click("#submit")
        assert "wrong one-time code" in await page.inner_text("#error")
        await page.fill("#code", pyotp.TOTP(secret).now())
        await page.click("#submit")
        codes = (await page.inner_text("#recovery")).split()
        assert len(codes) == 10
    refused = password_grant(signed.stack, BOB)
    assert refused.status_code == 400 and "'otp'" in refused.json()["error_description"]
    granted = password_grant(signed.stack, BOB, codes[0])
    assert granted.status_code == 200, granted.text
    claims = jwt.decode(granted.json()["id_token"], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "otp"]
    assert password_grant(signed.stack, BOB, codes[0]).status_code == 400  # used up


async def _key_page_error(page: object) -> str:
    error = page.locator("#key-error")  # type: ignore[attr-defined]
    return str(await error.inner_text()) if await error.count() else ""


async def test_a_security_key_registers_and_signs_in(signed: Signed) -> None:
    verifier, challenge = pkce()
    async with chromium_page() as page:
        cdp = await page.context.new_cdp_session(page)
        await cdp.send("WebAuthn.enable")
        authenticator = (await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "transport": "usb", "hasResidentKey": True,
            "hasUserVerification": True, "isUserVerified": True,
            "automaticPresenceSimulation": True}}))["authenticatorId"]
        await page.goto(f"{signed.stack.url}/oidc/account/keys")
        await page.fill("#username", ALICE)
        await page.fill("#password", PASSWORD)
        await page.click("#submit")
        await page.click("#register-key")
        try:
            await page.wait_for_selector("#key-result:not([hidden])", timeout=10_000)
        except Exception as exc:
            raise AssertionError(await _key_page_error(page)) from exc
        assert ALICE in await page.inner_text("#key-result")
        credentials = (await cdp.send("WebAuthn.getCredentials",
                                      {"authenticatorId": authenticator}))["credentials"]
        assert len(credentials) == 1 and credentials[0]["signCount"] == 1
        with callback_listener() as (redirect_uri, seen):
            params = {"response_type": "code", "client_id": "sigstore", "scope": "openid email",
                      "redirect_uri": redirect_uri, "code_challenge": challenge,
                      "code_challenge_method": "S256", "state": "s-k", "nonce": "n-k"}
            query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
            await page.goto(f"{signed.stack.url}/oidc/auth?{query}")
            await page.fill("#username", CAROL)  # carol has no security key
            await page.click("#key-login")
            await page.wait_for_selector("#key-error:not([hidden])", timeout=10_000)
            assert not [p for p in seen if p.startswith("/auth/callback?")]
            await page.fill("#username", ALICE)
            try:
                async with page.expect_navigation(url=redirect_uri + "?**", timeout=10_000):
                    await page.click("#key-login")
            except Exception as exc:
                raise AssertionError(await _key_page_error(page)) from exc
        callback = next(p for p in seen if p.startswith("/auth/callback?"))
    code = parse_qs(urlsplit(callback).query)["code"][0]
    token = httpx.post(f"{signed.stack.url}/oidc/token", timeout=10, data={
        "grant_type": "authorization_code", "client_id": "sigstore", "code": code,
        "redirect_uri": redirect_uri, "code_verifier": verifier})
    assert token.status_code == 200, token.text
    claims = jwt.decode(token.json()["id_token"], options={"verify_signature": False})
    assert claims["email"] == ALICE and claims["amr"] == ["hwk", "user"]
