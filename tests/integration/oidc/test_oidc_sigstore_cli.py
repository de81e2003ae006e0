"""``sigstore sign --oauth-force-oob`` (sigstore-python 4.5.1) against a whole keyless stack.

The exact command of interop.md §3.1 "Interactive OAuth": the CLI discovers the embedded
provider, prints the sign-in URL, reads the code from stdin, gets a certificate from the CA with
the resulting token, and the bundle verifies for the signed-in user and issuer.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from oidc_flows import form_action, hidden_fields

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stack"))
from stackutil import RunningStack, start_stack

pytestmark = pytest.mark.integration

USER, PASSWORD = "frank@example.com", "frank-pw-1"


@pytest.fixture(scope="module")
def oidc_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(
        tmp_path_factory.mktemp("oidc-stack") / "data", users=(f"{USER}:{PASSWORD}",)
    )
    try:
        yield running
    finally:
        if running.stop() not in (0, -signal.SIGTERM):
            sys.stderr.write(running.output())


def sign_in_out_of_band(url: str, base: str) -> str:
    """The user's part: open the printed URL, sign in, copy the displayed code."""
    with httpx.Client() as browser:
        page = browser.get(url)
        assert page.status_code == 200, page.text
        data = {**hidden_fields(page.text), "username": USER, "password": PASSWORD}
        shown = browser.post(form_action(base, page.text), data=data, headers={"Origin": base})
    code = re.search(r"<p class=code id=code>([^<]+)</p>", shown.text)
    assert code, shown.text
    return code.group(1)


def test_sigstore_sign_with_interactive_oauth(
    oidc_stack: RunningStack, sigstore_python: Path, tmp_path: Path
) -> None:
    trust = tmp_path / "tc.json"
    trust.write_text(json.dumps(oidc_stack.client_trust_config()))
    artifact = tmp_path / "artifact.txt"
    artifact.write_text("signed after an interactive sign-in\n")
    bundle = tmp_path / "artifact.sigstore.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "ACTIONS_"))}
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [
            str(sigstore_python),
            "--trust-config",
            str(trust),
            "sign",
            "--oidc-disable-ambient-providers",
            "--oauth-force-oob",
            "--oidc-issuer",
            oidc_stack.issuer,
            "--bundle",
            str(bundle),
            str(artifact),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        url = ""
        for line in process.stderr:
            if line.strip().startswith(oidc_stack.issuer + "/auth?"):
                url = line.strip()
                break
        assert url, "sigstore printed no sign-in URL"
        code = sign_in_out_of_band(url, oidc_stack.url)
        _, stderr = process.communicate(code + "\n", timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    verify = subprocess.run(
        [
            str(sigstore_python),
            "--trust-config",
            str(trust),
            "verify",
            "identity",
            "--bundle",
            str(bundle),
            "--cert-identity",
            USER,
            "--cert-oidc-issuer",
            oidc_stack.issuer,
            str(artifact),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stderr
    assert "OK" in verify.stdout + verify.stderr


def test_machine_client_from_config_signs_as_uri_identity(
    sigstore_python: Path, tmp_path: Path
) -> None:
    """[[oidc_clients]] in the config file → client credentials → a URI-identity certificate."""
    from stackutil import free_port

    port = free_port()
    subject = f"http://localhost:{port}/ci/release-bot"
    config = tmp_path / "keyless.toml"
    config.write_text(
        "[[oidc_clients]]\n"
        'client_id = "release-bot"\n'
        'secret = "bot-secret-1"\n'
        f'subject = "{subject}"\n'
    )
    running = start_stack(tmp_path / "data", "--config", str(config), port=port, users=())
    try:
        token_response = httpx.post(
            f"{running.issuer}/token",
            data={"grant_type": "client_credentials"},
            auth=("release-bot", "bot-secret-1"),
            timeout=10,
        )
        assert token_response.status_code == 200, token_response.text
        token = token_response.json()["access_token"]
        trust = tmp_path / "tc.json"
        trust.write_text(json.dumps(running.client_trust_config()))
        artifact = tmp_path / "release.tar"
        artifact.write_bytes(b"release bits\n")
        bundle = tmp_path / "release.sigstore.json"
        signed = subprocess.run(
            [
                str(sigstore_python),
                "--trust-config",
                str(trust),
                "sign",
                "--identity-token",
                token,
                "--bundle",
                str(bundle),
                str(artifact),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert signed.returncode == 0, signed.stderr
        verified = subprocess.run(
            [
                str(sigstore_python),
                "--trust-config",
                str(trust),
                "verify",
                "identity",
                "--bundle",
                str(bundle),
                "--cert-identity",
                subject,
                "--cert-oidc-issuer",
                running.issuer + "/ci",
                str(artifact),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert verified.returncode == 0, verified.stderr
    finally:
        running.stop()
