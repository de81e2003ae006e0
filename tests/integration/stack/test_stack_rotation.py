"""``keyless admin rotate {ca,tsa}``: new key generations with validity windows (issue 9).

A bundle signed before the rotation and one signed after must both verify with the trust
material published after it, with every client; the trusted root then lists two CAs and two TSAs,
the old ones with a ``validFor.end``; the TUF repository publishes the new trusted root.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from stackutil import KEYLESS, start_stack
from test_stack_interop import VERIFIERS, make_workspace, sign_python

pytestmark = pytest.mark.integration


def _admin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KEYLESS), "admin", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_rotate_ca_and_tsa_keeps_old_bundles_valid(tmp_path: Path, sigstore_python: Path,
                                                   node_path: Path) -> None:
    data = tmp_path / "data"
    stack = start_stack(data)
    try:
        before = stack.client_trust_config()
        (tmp_path / "before").mkdir()
        ws = make_workspace(stack, tmp_path / "before", node_path, before)
        old_bundle = tmp_path / "before.sigstore.json"
        sign_python(ws, 2, "blob", old_bundle)
        refused = _admin("rotate", "ca", "--data-dir", str(data))
        assert refused.returncode == 2 and "in use" in refused.stderr
        tuf_before = httpx.get(f"{stack.url}/tuf/timestamp.json", timeout=5).json()
        port = stack.port
    finally:
        assert stack.stop() == 0
    for service in ("ca", "tsa"):
        result = _admin("rotate", service, "--data-dir", str(data))
        assert result.returncode == 0, result.stderr
        assert f"{service}.2" in result.stderr
    assert _admin("rotate", "log", "--data-dir", str(data)).returncode == 2

    stack = start_stack(data, port=port)
    try:
        after = stack.client_trust_config()
        root = after["trustedRoot"]
        assert isinstance(root, dict)
        cas, tsas = root["certificateAuthorities"], root["timestampAuthorities"]
        assert len(cas) == 2 and len(tsas) == 2
        assert "end" in cas[0]["validFor"] and "end" not in cas[1]["validFor"]
        assert "end" in tsas[0]["validFor"] and "end" not in tsas[1]["validFor"]
        assert cas[0]["certChain"] == before["trustedRoot"]["certificateAuthorities"][0][  # type: ignore[index]
            "certChain"]
        assert root["tlogs"] == before["trustedRoot"]["tlogs"]  # type: ignore[index]
        tuf_after = httpx.get(f"{stack.url}/tuf/timestamp.json", timeout=5).json()
        assert tuf_after["signed"]["version"] > tuf_before["signed"]["version"]

        (tmp_path / "after").mkdir()
        ws = make_workspace(stack, tmp_path / "after", node_path, after)
        new_bundle = tmp_path / "after.sigstore.json"
        sign_python(ws, 2, "blob", new_bundle)
        for bundle, organization in ((old_bundle, "keyless"), (new_bundle, "keyless-g2")):
            material = json.loads(bundle.read_text())["verificationMaterial"]
            leaf = x509.load_der_x509_certificate(
                base64.b64decode(material["certificate"]["rawBytes"]))
            issuer = leaf.issuer.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
            assert issuer[0].value == organization, bundle.name
        failures = []
        for bundle in (old_bundle, new_bundle):
            for name, verify in VERIFIERS.items():
                try:
                    verify(ws, bundle)
                except AssertionError as exc:
                    failures.append(f"{name} on {bundle.name}: {exc}")
        assert not failures, "\n\n".join(failures)
    finally:
        assert stack.stop() == 0
