"""TOTP second factor on a real ``keyless serve`` (issue #18): carol (``totp_secret`` in
``keyless.toml``) gets no token without a current code, gets one with it (``amr`` pwd+otp) and
signs with it; a code works once; ``[oidc] password_grant = false`` turns the grant off."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import jwt
import pytest
from browserutil import ALICE, CAROL, password_grant, start_totp_stack, totp_code
from stackutil import KEYLESS

pytestmark = pytest.mark.integration


def test_carol_needs_her_code_and_signs_with_it(tmp_path: Path) -> None:
    stack = start_totp_stack(tmp_path / "data")
    try:
        missing = password_grant(stack, CAROL)
        assert missing.status_code == 400
        assert missing.json()["error"] == "invalid_grant"
        assert "'otp'" in missing.json()["error_description"]
        wrong = password_grant(stack, CAROL, "000000" if totp_code() != "000000" else "111111")
        assert wrong.status_code == 400 and "one-time code" in wrong.json()["error_description"]
        code = totp_code()
        granted = password_grant(stack, CAROL, code)
        assert granted.status_code == 200, granted.text
        token = granted.json()["id_token"]
        assert jwt.decode(token, options={"verify_signature": False})["amr"] == ["pwd", "otp"]
        replayed = password_grant(stack, CAROL, code)
        assert replayed.status_code == 400
        assert "already used" in replayed.json()["error_description"]
        plain = password_grant(stack, ALICE)
        assert jwt.decode(plain.json()["id_token"], options={"verify_signature": False})[
            "amr"] == ["pwd"]

        artifact = tmp_path / "c.txt"
        artifact.write_bytes(b"signed with a second factor\n")
        signed = subprocess.run(
            [str(KEYLESS), "sign", str(artifact), "--identity-token", token,
             "--server", stack.url], capture_output=True, text=True, timeout=120, check=False)
        assert signed.returncode == 0, signed.stderr
        bundle = json.loads((tmp_path / "c.txt.sigstore.json").read_text())
        assert bundle["verificationMaterial"]["tlogEntries"]
    finally:
        assert stack.stop() == 0, stack.output()[-3000:]


def test_the_password_grant_can_be_turned_off(tmp_path: Path) -> None:
    stack = start_totp_stack(tmp_path / "data", password_grant=False)
    try:
        refused = password_grant(stack, ALICE)
        assert refused.status_code == 400
        assert refused.json()["error"] == "unsupported_grant_type"
        discovery = httpx.get(f"{stack.url}/oidc/.well-known/openid-configuration", timeout=10)
        assert "password" not in discovery.json()["grant_types_supported"]
    finally:
        assert stack.stop() == 0, stack.output()[-3000:]
