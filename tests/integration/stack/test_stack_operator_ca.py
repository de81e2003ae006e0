"""An operator-supplied issuing CA ([ca] chain_pem + key_pem, encrypted key) serves the stack."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from stackutil import KEYLESS, launch_stack, start_stack

from keyless.services.ca import load_or_create

pytestmark = pytest.mark.integration


def _operator_ca(directory: Path) -> tuple[Path, Path, list[bytes]]:
    """A CA made outside the stack: chain file (issuing first) and an encrypted key file."""
    material = load_or_create(directory, organization="Example Corp", password=b"op-secret")
    chain_der = [cert.public_bytes(Encoding.DER) for cert in material.chain]
    chain = directory / "chain.pem"
    chain.write_bytes((directory / "intermediate.pem").read_bytes()
                      + (directory / "root.pem").read_bytes())
    return chain, directory / "intermediate.key", chain_der


def test_stack_issues_under_the_operator_chain(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    chain, key, chain_der = _operator_ca(tmp_path / "operator-ca")
    config = tmp_path / "keyless.toml"
    config.write_text(f'[ca]\nchain_pem = "{chain}"\nkey_pem = "{key}"\n'
                      'key_password_env = "TEST_KEYLESS_CA_PASSWORD"\n')
    monkeypatch.setenv("TEST_KEYLESS_CA_PASSWORD", "op-secret")
    stack = start_stack(tmp_path / "data", "--config", str(config))
    try:
        root = stack.client_trust_config()["trustedRoot"]
        assert isinstance(root, dict)
        published = [base64.b64decode(c["rawBytes"])
                     for c in root["certificateAuthorities"][-1]["certChain"]["certificates"]]
        assert published == chain_der
        artifact = tmp_path / "a.txt"
        artifact.write_bytes(b"signed under the operator's CA\n")
        signed = subprocess.run(
            [str(KEYLESS), "sign", str(artifact), "--identity-token", stack.token(),
             "--server", stack.url], capture_output=True, text=True, timeout=120, check=False)
        assert signed.returncode == 0, signed.stderr
        bundle = json.loads((tmp_path / "a.txt.sigstore.json").read_text())
        issued = x509.load_der_x509_certificate(
            base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"]))
        assert issued.issuer == x509.load_der_x509_certificate(chain_der[0]).subject
        verified = subprocess.run(
            [str(KEYLESS), "verify", str(artifact), "--server", stack.url,
             "--cert-identity", "alice@example.com", "--cert-oidc-issuer", stack.issuer],
            capture_output=True, text=True, timeout=60, check=False)
        assert verified.returncode == 0, verified.stderr
    finally:
        assert stack.stop() == 0, stack.output()


def test_missing_passphrase_variable_is_named(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    chain, key, _ = _operator_ca(tmp_path / "operator-ca")
    config = tmp_path / "keyless.toml"
    config.write_text(f'[ca]\nchain_pem = "{chain}"\nkey_pem = "{key}"\n'
                      'key_password_env = "TEST_KEYLESS_CA_PASSWORD_UNSET"\n')
    monkeypatch.delenv("TEST_KEYLESS_CA_PASSWORD_UNSET", raising=False)
    stack = launch_stack(tmp_path / "data", "--config", str(config))
    assert stack.process.wait(60) != 0
    assert "TEST_KEYLESS_CA_PASSWORD_UNSET" in stack.output()
