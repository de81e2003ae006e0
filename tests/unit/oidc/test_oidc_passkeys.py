"""WebAuthn ceremonies' refusals (the happy path runs in Chromium with a virtual authenticator:
tests/integration/stack/test_stack_browser.py::test_a_security_key_registers_and_signs_in)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyless.errors import ConfigError, InvalidInput
from keyless.server.config import read_config_file
from keyless.services.oidc.kv import MemoryKV
from keyless.services.oidc.passkeys import PasskeyStore


def store(**options: str) -> PasskeyStore:
    return PasskeyStore(MemoryKV(), rp_id="localhost", origin="http://localhost:3000", **options)


async def test_options_use_the_issuer_host_and_handles_work_once() -> None:
    keys = store()
    options, handle = await keys.registration_options("alice@example.com")
    assert json.loads(options)["rp"]["id"] == "localhost"
    with pytest.raises(InvalidInput, match="registration is invalid"):
        await keys.register(handle, json.dumps({"id": "x", "rawId": "x", "type": "public-key",
                                                "response": {}}))
    with pytest.raises(InvalidInput, match="expired or was used"):
        await keys.register(handle, "{}")


async def test_a_login_handle_is_no_registration_handle_and_garbage_is_refused() -> None:
    keys = store()
    options, handle = await keys.authentication_options("nobody@example.com")
    assert json.loads(options)["allowCredentials"]  # no hint about who has keys
    with pytest.raises(InvalidInput, match="something else"):
        await keys.register(handle, "{}")
    _options, handle = await keys.authentication_options("nobody@example.com")
    with pytest.raises(InvalidInput, match="not WebAuthn JSON"):
        await keys.authenticate(handle, "not json")
    with pytest.raises(InvalidInput, match="too large"):
        await keys.authenticate((await keys.authentication_options("a@b.c"))[1], "x" * 20_000)


def test_user_verification_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        store(user_verification="always")
    path = tmp_path / "keyless.toml"
    path.write_text('[oidc]\nwebauthn_user_verification = "required"\n')
    assert read_config_file(path)["oidc_webauthn_user_verification"] == "required"
    path.write_text('[oidc]\nwebauthn_user_verification = "sometimes"\n')
    with pytest.raises(ConfigError):
        read_config_file(path)
