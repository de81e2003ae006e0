"""[[oidc_users]] with a password_hash made by `keyless admin hash-password`: the password itself
never needs to be written into keyless.toml, and the password grant (contracts.md §3) works."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from stackutil import KEYLESS, start_stack

pytestmark = pytest.mark.integration

EMAIL = "bob@example.com"
PASSWORD = "correct horse battery staple"


def test_a_hashed_password_signs_in(tmp_path: Path) -> None:
    made = subprocess.run(
        [str(KEYLESS), "admin", "hash-password"], input=PASSWORD + "\n",
        capture_output=True, text=True, check=True, timeout=60,
    )
    hashed = made.stdout.strip()
    assert hashed.startswith("scrypt$") and PASSWORD not in hashed
    config = tmp_path / "keyless.toml"
    config.write_text(f'[[oidc_users]]\nemail = "{EMAIL}"\npassword_hash = "{hashed}"\n')
    stack = start_stack(tmp_path / "data", "--config", str(config), users=())
    try:
        assert "No OIDC users configured" not in stack.output()
        assert f"-d username={EMAIL} --data-urlencode password@-" in stack.output()
        assert stack.token(EMAIL, PASSWORD)
        wrong = httpx.post(
            f"{stack.url}/oidc/token",
            data={"grant_type": "password", "client_id": "sigstore", "scope": "openid email",
                  "username": EMAIL, "password": PASSWORD + "x"},
            timeout=10,
        )
        assert wrong.status_code in (400, 401), wrong.text
    finally:
        stack.stop()


def test_a_malformed_hash_is_refused_at_start(tmp_path: Path) -> None:
    config = tmp_path / "keyless.toml"
    config.write_text(f'[[oidc_users]]\nemail = "{EMAIL}"\npassword_hash = "md5$abc"\n')
    result = subprocess.run(
        [str(KEYLESS), "serve", "--data-dir", str(tmp_path / "d"), "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
