"""sigstore-python 4.5.1's and sigstore-js 5's own Merkle and checkpoint verification accept
what keyless produces.

Inclusion proofs computed from the log's own tiles (written by :class:`keyless.log.edge.RightEdge`,
read by :class:`keyless.log.nodes.NodeReader`) and checkpoints signed by
:class:`keyless.formats.note_keys.NoteSigner` (Rekor v1 ECDSA and Rekor v2 Ed25519 conventions,
with a witness cosignature line placed *before* the log's line) are fed to
``sigstore._internal.merkle.verify_merkle_inclusion`` and
``sigstore._internal.rekor.checkpoint.verify_checkpoint`` in the pinned client's own venv, and to
``@sigstore/verify``'s ``verifyCheckpoint`` / ``verifyMerkleInclusion`` under node (which also
require the signer name to be a substring of the log's ``baseURL``, interop.md §5 item 8).
Tampered cases must be rejected there too, so the check can fail.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from keyless.formats.checkpoint import Checkpoint
from keyless.formats.note import SignedNote
from keyless.formats.note_keys import NoteSigner, cosign
from keyless.keys import InMemorySigner, generate_key
from keyless.log.edge import RightEdge
from keyless.log.nodes import NodeReader
from keyless.merkle import CompactRange, inclusion_proof, leaf_hash

pytestmark = pytest.mark.integration

SCRIPT = r"""
import base64, json, sys
from types import SimpleNamespace as NS
from sigstore._internal.merkle import verify_merkle_inclusion
from sigstore._internal.rekor.checkpoint import verify_checkpoint
from sigstore._internal.trust import Keyring
from sigstore_models.common import v1 as common_v1

d = base64.b64decode
out = []
for c in json.load(sys.stdin):
    proof = NS(log_index=c["index"], tree_size=c["size"], hashes=[d(h) for h in c["hashes"]],
               root_hash=d(c["root"]), checkpoint=NS(envelope=c["checkpoint"]))
    entry = NS(_inner=NS(inclusion_proof=proof, canonicalized_body=d(c["body"]),
                         log_id=NS(key_id=d(c["log_id"]))))
    keyring = Keyring([common_v1.PublicKey(raw_bytes=c["key"],
                       key_details=common_v1.PublicKeyDetails[c["details"]])])
    try:
        verify_merkle_inclusion(entry)
        verify_checkpoint(keyring, entry)
        out.append("ok")
    except Exception as exc:
        out.append(f"{type(exc).__name__}: {exc}")
print(json.dumps(out))
"""


JS_SCRIPT = r"""
const crypto = require('crypto');
const { verifyCheckpoint } = require('@sigstore/verify/dist/tlog/checkpoint');
const { verifyMerkleInclusion } = require('@sigstore/verify/dist/tlog/merkle');
const cases = JSON.parse(require('fs').readFileSync(0, 'utf-8'));
const b = (s) => Buffer.from(s, 'base64');
console.log(JSON.stringify(cases.map((c) => {
  const entry = {
    canonicalizedBody: b(c.body),
    inclusionProof: { logIndex: String(c.index), treeSize: String(c.size), rootHash: b(c.root),
                      hashes: c.hashes.map(b), checkpoint: { envelope: c.checkpoint } },
  };
  const tlogs = [{
    logID: b(c.log_id), baseURL: c.base_url,
    publicKey: crypto.createPublicKey({ key: b(c.key), format: 'der', type: 'spki' }),
    validFor: { start: new Date(0), end: new Date(8640000000000000) },
  }];
  try {
    const checkpoint = verifyCheckpoint(entry, tlogs);
    verifyMerkleInclusion(entry, checkpoint);
    return 'ok';
  } catch (e) {
    return `${e.name}: ${e.message}`;
  }
})));
"""


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _cases() -> tuple[list[dict[str, Any]], list[bool]]:
    bodies = [f'{{"entry":{i}}}'.encode() for i in range(1500)]
    hashes = [leaf_hash(b) for b in bodies]
    store: dict[str, bytes] = {}
    edge = RightEdge(CompactRange(), [], [])
    for start in range(0, len(hashes), 100):
        tiles, _obsolete = edge.extend(hashes[start : start + 100], bodies[start : start + 100])
        store.update(tiles)
    size = len(hashes)
    nodes = NodeReader(store.get, lambda: size)
    root = edge.root()
    witness = ed25519.Ed25519PrivateKey.generate()

    v1 = NoteSigner.ecdsa("localhost:3000", InMemorySigner(generate_key("ecdsa-p256")))
    v2 = NoteSigner.ed25519("localhost:3000/rekor", InMemorySigner(generate_key("ed25519")))
    cases: list[dict[str, Any]] = []
    expect: list[bool] = []
    for signer, origin, details, base_url in [
        (v1, "localhost:3000 - 1234567", "PKIX_ECDSA_P256_SHA_256", "http://localhost:3000"),
        (v2, "localhost:3000/rekor", "PKIX_ED25519", "http://localhost:3000/rekor"),
    ]:
        text = Checkpoint(origin, size, root).to_text()
        note = SignedNote(text, (cosign(text, "witness.example/w1", witness, 1_700_000_000),))
        note = note.with_signature(signer.sign(text))  # the log's line is not the first
        spki = signer.signer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for index in (0, 1, 255, 256, 777, size - 1):
            case = {
                "body": _b64(bodies[index]),
                "index": index,
                "size": size,
                "hashes": [_b64(h) for h in inclusion_proof(index, size, nodes.get_hash)],
                "root": _b64(root),
                "checkpoint": note.to_bytes().decode(),
                "log_id": _b64(signer.key_id),
                "key": _b64(spki),
                "details": details,
                "base_url": base_url,
            }
            cases.append(case)
            expect.append(True)
        bad_proof = dict(cases[-2], hashes=[_b64(b"\x00" * 32), *cases[-2]["hashes"][1:]])
        bad_sig = dict(
            cases[-1], checkpoint=cases[-1]["checkpoint"].replace(f"\n{size}\n", "\n1\n")
        )
        cases += [bad_proof, bad_sig]
        expect += [False, False]
    return cases, expect


def test_sigstore_python_accepts_keyless_proofs_and_checkpoints(sigstore_python: Path) -> None:
    python = sigstore_python.parent / "python"
    cases, expect = _cases()
    run = subprocess.run(
        [str(python), "-c", SCRIPT],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)
    assert [r == "ok" for r in results] == expect, results


def test_sigstore_js_accepts_keyless_proofs_and_checkpoints(node_path: Path) -> None:
    cases, expect = _cases()
    run = subprocess.run(
        ["node", "-e", JS_SCRIPT],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"NODE_PATH": str(node_path), "PATH": os.environ.get("PATH", "")},
    )
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)
    assert [r == "ok" for r in results] == expect, results
