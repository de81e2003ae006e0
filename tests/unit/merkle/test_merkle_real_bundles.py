"""The real inclusion proofs of public-good Rekor v1 and v2 bundles verify through keyless.merkle.

Bundles are protobuf-JSON (bytes base64, uint64 as strings): the leaf is the base64-decoded
``canonicalizedBody``, the proof is ``inclusionProof.{logIndex, treeSize, hashes, rootHash}``
(protocols.md §3.2, §6). Cases whose name ends in ``_fail`` are excluded except those whose failure
*is* the proof, which must be rejected here.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from keyless.merkle import InclusionProofError, leaf_hash, verify_inclusion

# tests/conftest.py's VECTORS, recomputed here: `from conftest import VECTORS` is ambiguous once
# another test folder has its own conftest.py (tests/contract/), so it depends on collection order.
VECTORS = Path(__file__).resolve().parents[2] / "assets"

PROOF_FAILURES = {"inclusion-proof-corrupted-hash_fail", "invalid-inclusion-proof_fail"}


def _bundles() -> list[Path]:
    found = sorted((VECTORS / "sigstore-python").glob("*.sigstore*"))
    for case in sorted((VECTORS / "conformance" / "bundle-verify").glob("*")):
        b = case / "bundle.sigstore.json"
        if b.is_file() and (not case.name.endswith("_fail") or case.name in PROOF_FAILURES):
            found.append(b)
    return found


BUNDLES = _bundles()


def _entries(path: Path) -> list[dict[str, Any]]:
    doc = json.loads(path.read_bytes())
    entries: list[dict[str, Any]] = doc["verificationMaterial"].get("tlogEntries", [])
    return [e for e in entries if "inclusionProof" in e]


def _check(entry: dict[str, Any]) -> None:
    p = entry["inclusionProof"]
    verify_inclusion(
        leaf_hash(base64.b64decode(entry["canonicalizedBody"])),
        int(p["logIndex"]),
        int(p["treeSize"]),
        [base64.b64decode(x) for x in p["hashes"]],
        base64.b64decode(p["rootHash"]),
    )


def test_vectors_present() -> None:
    assert len(BUNDLES) >= 20, f"expected the vector bundles under {VECTORS}"


@pytest.mark.parametrize("path", BUNDLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_inclusion_proof(path: Path, vectors: Path) -> None:
    entries = _entries(path)
    if path.parent.name in PROOF_FAILURES:
        assert entries
        with pytest.raises(InclusionProofError):
            for entry in entries:
                _check(entry)
        return
    if path.parent.name.endswith("missing-inclusion-proof") or not entries:
        pytest.fail(f"{path} has no inclusion proof to check")
    for entry in entries:
        _check(entry)


@pytest.mark.parametrize("path", BUNDLES[:4], ids=lambda p: p.name)
def test_altered_real_proof_fails(path: Path, vectors: Path) -> None:
    for entry in _entries(path):
        p = entry["inclusionProof"]
        hashes = [base64.b64decode(x) for x in p["hashes"]]
        body = base64.b64decode(entry["canonicalizedBody"])
        args = (int(p["logIndex"]), int(p["treeSize"]))
        root = base64.b64decode(p["rootHash"])
        with pytest.raises(InclusionProofError):
            verify_inclusion(leaf_hash(body + b" "), *args, hashes, root)
        with pytest.raises(InclusionProofError):
            verify_inclusion(leaf_hash(body), args[0] - 1, args[1], hashes, root)
        for i in range(len(hashes)):
            bad = list(hashes)
            bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
            with pytest.raises(InclusionProofError):
                verify_inclusion(leaf_hash(body), *args, bad, root)
