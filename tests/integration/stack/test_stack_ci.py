"""The CI recipe of docs/ci-signing.md, run as written: a machine identity from the config file,
a token by the client credentials grant, ``keyless sign --server``, ``keyless verify``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from stackutil import KEYLESS, free_port, start_stack

pytestmark = pytest.mark.integration


def test_ci_machine_identity_signs_and_verifies(tmp_path: Path) -> None:
    port = free_port()
    subject = f"http://localhost:{port}/ci/release-bot"
    config = tmp_path / "keyless.toml"
    config.write_text(
        "[[oidc_clients]]\n"
        'client_id = "release-bot"\n'
        'secret = "bot-secret-123"\n'
        f'subject = "{subject}"\n'
    )
    stack = start_stack(tmp_path / "data", "--config", str(config), port=port, users=())
    try:
        token = httpx.post(f"{stack.url}/oidc/token", data={
            "grant_type": "client_credentials", "client_id": "release-bot",
            "client_secret": "bot-secret-123", "scope": "openid"}, timeout=10)
        assert token.status_code == 200, token.text
        jwt = token.json()["access_token"]
        artifact = tmp_path / "release.tar.gz"
        artifact.write_bytes(b"release contents\n")
        signed = subprocess.run(
            [str(KEYLESS), "sign", str(artifact), "--identity-token", jwt,
             "--server", stack.url], capture_output=True, text=True, timeout=120, check=False)
        assert signed.returncode == 0, signed.stderr
        verify = [str(KEYLESS), "verify", str(artifact), "--server", stack.url,
                  "--cert-identity", subject, "--cert-oidc-issuer", f"{stack.url}/oidc/ci"]
        ok = subprocess.run(verify, capture_output=True, text=True, timeout=60, check=False)
        assert ok.returncode == 0, ok.stderr
        wrong = subprocess.run([*verify[:-1], f"{stack.url}/oidc"], capture_output=True,
                               text=True, timeout=60, check=False)
        assert wrong.returncode == 1
        assert "is not the expected" in wrong.stderr and "/oidc'" in wrong.stderr, wrong.stderr
        bad = httpx.post(f"{stack.url}/oidc/token", data={
            "grant_type": "client_credentials", "client_id": "release-bot",
            "client_secret": "wrong", "scope": "openid"}, timeout=10)
        assert bad.status_code in (400, 401)
    finally:
        assert stack.stop() == 0, stack.output()
