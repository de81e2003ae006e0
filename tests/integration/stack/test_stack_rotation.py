"""``keyless admin rotate {ca,tsa,log}``: new key generations with validity windows (issue 9).

Bundles signed before the rotation and after it (Rekor v1 and v2) must all verify with the trust
material published after it, with every client; the trusted root then lists two CAs, two TSAs and
two shards of each Rekor log, the old ones with a ``validFor.end``; the TUF repository publishes
the new trusted root; the retired Rekor v2 shard stays readable but takes no writes.
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
        old_bundles = [tmp_path / f"before-v{v}.sigstore.json" for v in (1, 2)]
        for version, bundle in zip((1, 2), old_bundles, strict=True):
            sign_python(ws, version, "blob", bundle)
        refused = _admin("rotate", "ca", "--data-dir", str(data))
        assert refused.returncode == 2 and "in use" in refused.stderr
        tuf_before = httpx.get(f"{stack.url}/tuf/timestamp.json", timeout=5).json()
        port = stack.port
    finally:
        assert stack.stop() == 0
    for service, generation in (("ca", "ca.2"), ("tsa", "tsa.2"), ("log", "rekor-v2.2")):
        result = _admin("rotate", service, "--data-dir", str(data))
        assert result.returncode == 0, result.stderr
        assert generation in result.stderr

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
        tlogs = root["tlogs"]
        assert [t["baseUrl"] for t in tlogs] == [
            f"{stack.url}/rekor", f"{stack.url}/rekor-2", stack.url, stack.url]
        assert ["end" in t["publicKey"]["validFor"] for t in tlogs] == [True, False, True, False]
        rekor_urls = after["signingConfig"]["rekorTlogUrls"]  # type: ignore[index]
        assert [u["url"] for u in rekor_urls] == [f"{stack.url}/rekor-2", stack.url]
        retired = httpx.get(f"{stack.url}/rekor/checkpoint", timeout=5)
        assert retired.status_code == 200 and retired.text.startswith(f"localhost:{port}/rekor\n")
        write = httpx.post(f"{stack.url}/rekor/api/v2/log/entries", json={}, timeout=5)
        assert write.status_code == 410, write.text
        assert f"add entries at {stack.url}/rekor-2" in write.json()["message"]
        current = httpx.get(f"{stack.url}/rekor-2/checkpoint", timeout=5)
        assert current.text.startswith(f"localhost:{port}/rekor-2\n")
        tuf_after = httpx.get(f"{stack.url}/tuf/timestamp.json", timeout=5).json()
        assert tuf_after["signed"]["version"] > tuf_before["signed"]["version"]

        (tmp_path / "after").mkdir()
        ws = make_workspace(stack, tmp_path / "after", node_path, after)
        new_bundles = [tmp_path / f"after-v{v}.sigstore.json" for v in (1, 2)]
        for version, bundle in zip((1, 2), new_bundles, strict=True):
            sign_python(ws, version, "blob", bundle)
        entry = json.loads(new_bundles[1].read_text())["verificationMaterial"]["tlogEntries"][0]
        assert entry["logId"]["keyId"] == tlogs[1]["logId"]["keyId"], "not on the new v2 shard"
        labelled = [(b, "keyless") for b in old_bundles] + [(b, "keyless-g2") for b in new_bundles]
        for bundle, organization in labelled:
            material = json.loads(bundle.read_text())["verificationMaterial"]
            leaf = x509.load_der_x509_certificate(
                base64.b64decode(material["certificate"]["rawBytes"]))
            issuer = leaf.issuer.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
            assert issuer[0].value == organization, bundle.name
        failures = []
        for bundle in [*old_bundles, *new_bundles]:
            for name, verify in VERIFIERS.items():
                try:
                    verify(ws, bundle)
                except AssertionError as exc:
                    failures.append(f"{name} on {bundle.name}: {exc}")
        assert not failures, "\n\n".join(failures)
    finally:
        assert stack.stop() == 0
