"""Helpers for the real-stack browser tests: a stack whose config file provisions users (one
with a TOTP second factor), the password grant with ``otp``, PKCE, and headless Chromium."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
from stackutil import RunningStack, start_stack

from browsers import CHROMIUM, CHROMIUM_ARGS
from conftest import require

ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
PASSWORD = "s3cret-password"
#: carol's second factor (160 bits, base32)
CAROL_TOTP = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def start_totp_stack(data_dir: Path, *, password_grant: bool = True) -> RunningStack:
    """``keyless serve`` whose ``keyless.toml`` has alice and bob (password) and carol
    (password + TOTP); ``password_grant = false`` when asked."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = data_dir / "keyless.toml"
    text = "" if password_grant else "[oidc]\npassword_grant = false\n"
    for email in (ALICE, BOB):
        text += f'[[oidc_users]]\nemail = "{email}"\npassword = "{PASSWORD}"\n'
    text += (f'[[oidc_users]]\nemail = "{CAROL}"\npassword = "{PASSWORD}"\n'
             f'totp_secret = "{CAROL_TOTP}"\n')
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return start_stack(data_dir, users=())


def totp_code(offset_steps: int = 0) -> str:
    """carol's code ``offset_steps`` steps from now (codes are accepted once, ±1 step)."""
    return pyotp.TOTP(CAROL_TOTP).at(time.time() + offset_steps * 30)


_USED_STEPS: set[int] = set()


def fresh_code() -> str:
    """A code of carol's for a step this test process has not used yet (each code works once;
    the provider accepts the steps either side of now)."""
    now = int(time.time() // 30)
    step = next(s for s in (now, now + 1, now - 1) if s not in _USED_STEPS)
    _USED_STEPS.add(step)
    return pyotp.TOTP(CAROL_TOTP).at(step * 30)


def password_grant(stack: RunningStack, user: str, otp: str | None = None) -> httpx.Response:
    data = {"grant_type": "password", "client_id": "sigstore", "scope": "openid email",
            "username": user, "password": PASSWORD}
    if otp is not None:
        data["otp"] = otp
    return httpx.post(f"{stack.url}/oidc/token", data=data, timeout=10)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@contextlib.asynccontextmanager
async def chromium_page() -> AsyncIterator[Any]:
    """A page of Debian's headless Chromium driven by Playwright."""
    require(CHROMIUM.exists(), "Debian chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            yield await context.new_page()
        finally:
            await browser.close()


def screenshot_dir() -> Path | None:
    """Where to keep screenshots for the docs (``KEYLESS_SCREENSHOTS``), if anywhere."""
    value = os.environ.get("KEYLESS_SCREENSHOTS")
    return Path(value) if value else None
