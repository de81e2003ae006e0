"""Real clients against the whole ``keyless serve`` stack, checked from the log's side.

sigstore-python 4.5.1 signs with ``--rekor-version 1`` and ``2`` and verifies its own bundles;
sigstore-js 5.0.1 records a hashedrekord on Rekor v2 (``sign-v2.js``). The log is then asked about
each bundle's entry through every read path: the v1 entry API, the v2 tiles (recomputed root under
the signed checkpoint), and keyless search by artifact digest and by identity + issuer.
(The full sign-here-verify-everywhere matrix is tests/integration/stack/test_stack_interop.py.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import load_der_public_key

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[2] / "unit" / "tlog"))
sys.path.insert(0, str(HERE.parents[1] / "stack"))

from stackutil import USER, RunningStack, start_stack  # noqa: E402
from tlog_support import parse_note, verify_note_ed25519, verify_tiles  # noqa: E402

from conftest import INTEROP_SCRIPTS  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    stack = start_stack(tmp_path_factory.mktemp("tlog-e2e") / "data")
    try:
        yield stack
    finally:
        stack.stop()


def _run(args: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=180, check=False,
                            env=env)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout}\n{result.stderr}"


def _entry(bundle: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(bundle.read_text())
    (entry,) = value["verificationMaterial"]["tlogEntries"]
    return entry


def _check_v2_tiles(stack: RunningStack, trust: dict[str, Any], entry: dict[str, Any]) -> None:
    """The entry's body is in the served entry bundles, under a root the tiles recompute."""
    (v2,) = [t for t in trust["trustedRoot"]["tlogs"] if t["baseUrl"].endswith("/rekor")]
    key = load_der_public_key(base64.b64decode(v2["publicKey"]["rawBytes"]))
    with httpx.Client(base_url=f"{stack.url}/rekor", timeout=30) as client:
        note = parse_note(client.get("/checkpoint").content)
        origin = v2["baseUrl"].split("://", 1)[1]
        key_id = verify_note_ed25519(note, origin, key)  # type: ignore[arg-type]
        assert base64.b64decode(v2["logId"]["keyId"]) == key_id  # gotcha 9

        def fetch(path: str) -> bytes:
            r = client.get(f"/{path}")
            assert r.status_code == 200, path
            return r.content

        entries = verify_tiles(fetch, note.size, note.root)
    assert entries[int(entry["logIndex"])] == base64.b64decode(entry["canonicalizedBody"])


def _search(stack: RunningStack, base: str, params: dict[str, str]) -> list[dict[str, Any]]:
    r = httpx.get(f"{stack.url}{base}/search", params=params, timeout=30)
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()["entries"]
    return entries


def test_sigstore_python_v1_and_v2_entries_are_served_and_searchable(
    running: RunningStack, sigstore_python: Path, tmp_path: Path
) -> None:
    trust = running.client_trust_config()
    tc = tmp_path / "tc.json"
    tc.write_text(json.dumps(trust))
    artifact = tmp_path / "artifact.txt"
    artifact.write_bytes(b"tlog end-to-end " + os.urandom(8).hex().encode())
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "XDG_DATA_HOME": str(tmp_path / "data")}
    bundles = {}
    for rekor in (1, 2):
        bundle = tmp_path / f"artifact.v{rekor}.sigstore.json"
        _run([str(sigstore_python), "--trust-config", str(tc), "sign", "--rekor-version",
              str(rekor), "--identity-token", running.token(), "--bundle", str(bundle),
              str(artifact)], env)
        _run([str(sigstore_python), "--trust-config", str(tc), "verify", "identity",
              "--bundle", str(bundle), "--cert-identity", USER, "--cert-oidc-issuer",
              running.issuer, str(artifact)], env)
        bundles[rekor] = _entry(bundle)
    v1, v2 = bundles[1], bundles[2]
    assert v1["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.1"}
    assert v2["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    assert int(v1["logIndex"]) >= 1 and int(v2["logIndex"]) >= 1  # never index 0 (gotcha 1)

    r = httpx.get(f"{running.url}/api/v1/log/entries", params={"logIndex": v1["logIndex"]},
                  timeout=30)
    (served,) = r.json().values()
    assert base64.b64decode(served["body"]) == base64.b64decode(v1["canonicalizedBody"])
    _check_v2_tiles(running, trust, v2)

    # Search is eventually consistent (a background indexer): wait for it (bound: a loaded
    # machine).
    deadline = time.monotonic() + 60
    while True:
        found_v1 = _search(running, "/api/v1", {"digest": f"sha256:{digest}"})
        found_v2 = _search(running, "/rekor/api/v2", {"identity": USER,
                                                      "issuer": running.issuer,
                                                      "digest": digest})
        if (found_v1 and found_v2) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [e["logIndex"] for e in found_v2] == [v2["logIndex"]]
    assert [next(iter(e.values()))["logIndex"] for e in found_v1] == [int(v1["logIndex"])]
    ids = httpx.post(f"{running.url}/api/v1/index/retrieve",
                     json={"hash": f"sha256:{digest}"}, timeout=30).json()
    assert [i[16:] for i in ids] == [
        hashlib.sha256(b"\x00" + base64.b64decode(v1["canonicalizedBody"])).hexdigest()]


def test_sigstore_js_v2_hashedrekord_is_in_the_tiles(
    running: RunningStack, node_path: Path, tmp_path: Path
) -> None:
    trust = running.client_trust_config()
    artifact = tmp_path / "artifact.txt"
    artifact.write_bytes(b"tlog js " + os.urandom(8).hex().encode())
    bundle = tmp_path / "artifact.js-v2.sigstore.json"
    env = {**os.environ, "NODE_PATH": str(node_path), "SIGSTORE_ID_TOKEN": running.token(),
           "FULCIO_URL": running.url, "REKOR_URL": f"{running.url}/rekor",
           "TSA_URL": f"{running.url}/api/v1/timestamp"}
    _run(["node", str(INTEROP_SCRIPTS / "sign-v2.js"), str(artifact), str(bundle)], env)
    entry = _entry(bundle)
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    _check_v2_tiles(running, trust, entry)
