"""Real Rekor v1 (ECDSA) and Rekor v2 (Ed25519) checkpoints verify with their trusted-root keys.

Which conformance cases this layer rejects (C2SP signed-note / tlog-checkpoint problems):

* ``checkpoint-bad-keyhint_fail`` — the key hint matches no trusted key: no trusted signature.
* ``invalid-checkpoint-signature_fail`` — the trusted key's signature does not verify.
* ``rekor2-checkpoint-missing-log-signature_fail`` — no signature lines at all: malformed note.
* ``rekor2-checkpoint-missing-origin_fail`` / ``-missing-size_fail`` / ``-missing-root-hash_fail``
  — the checkpoint body lacks a mandatory line: malformed checkpoint.
* ``rekor2-checkpoint-no-matching-signature_fail`` — signed under another name: no trusted line.

Not rejected here: ``checkpoint-wrong-roothash_fail`` carries a *validly signed* checkpoint of the
same log at another tree size; it is the bundle verifier's job to require that the checkpoint's
size and root equal the inclusion proof's (checked below as the property callers must enforce).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from keyless.formats.checkpoint import Checkpoint, open_checkpoint
from keyless.formats.note import CheckpointError, MalformedNoteError, SignedNote
from keyless.formats.note_keys import NoteVerifier

# tests/conftest.py's VECTORS, recomputed here: `from conftest import VECTORS` is ambiguous once
# another test folder has its own conftest.py (tests/contract/), so it depends on collection order.
VECTORS = Path(__file__).resolve().parents[2] / "assets"

CONFORMANCE = VECTORS / "conformance" / "bundle-verify"
PRODUCTION = VECTORS / "public-good" / "production" / "trusted_root.json"
STAGING = VECTORS / "public-good" / "staging" / "trusted_root.json"

SIGSTORE_PYTHON_ROOTS = {
    "bundle.txt.sigstore": STAGING,
    "staging-rekor-v2.txt.sigstore.json": STAGING,
    "a.dsse.staging-rekor-v2.txt.sigstore.json": STAGING,
    "bundle_v3_github.whl.sigstore": PRODUCTION,
}

REKOR_V2_KINDS = {("hashedrekord", "0.0.2"), ("dsse", "0.0.2")}

REJECTED_HERE = {
    "checkpoint-bad-keyhint_fail": CheckpointError,
    "invalid-checkpoint-signature_fail": CheckpointError,
    "rekor2-checkpoint-missing-log-signature_fail": MalformedNoteError,
    "rekor2-checkpoint-missing-origin_fail": MalformedNoteError,
    "rekor2-checkpoint-missing-size_fail": MalformedNoteError,
    "rekor2-checkpoint-missing-root-hash_fail": MalformedNoteError,
    "rekor2-checkpoint-no-matching-signature_fail": CheckpointError,
}


def _root_for(bundle: Path) -> Path:
    if bundle.parent.parent == CONFORMANCE:
        own = bundle.parent / "trusted_root.json"
        return own if own.is_file() else PRODUCTION
    return SIGSTORE_PYTHON_ROOTS[bundle.name]


def _cases() -> list[tuple[Path, Path]]:
    out = [(VECTORS / "sigstore-python" / n, r) for n, r in SIGSTORE_PYTHON_ROOTS.items()]
    for case in sorted(CONFORMANCE.glob("*")):
        b = case / "bundle.sigstore.json"
        if b.is_file() and not case.name.endswith("_fail"):
            out.append((b, _root_for(b)))
    return out


def _verifier(trusted_root: Path, log_id_b64: str) -> NoteVerifier:
    doc = json.loads(trusted_root.read_bytes())
    for tlog in doc["tlogs"]:
        if tlog["logId"]["keyId"] == log_id_b64:
            return NoteVerifier.from_trusted_log(
                tlog["baseUrl"],
                base64.b64decode(tlog["publicKey"]["rawBytes"]),
                base64.b64decode(tlog["logId"]["keyId"]),
            )
    raise AssertionError(f"log {log_id_b64} not in {trusted_root}")


def _entries(bundle: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(bundle.read_bytes())
    except json.JSONDecodeError:
        return []
    return [
        e
        for e in doc["verificationMaterial"].get("tlogEntries", [])
        if e.get("inclusionProof", {}).get("checkpoint")
    ]


CASES = _cases()


def test_enough_checkpoints() -> None:
    assert sum(len(_entries(b)) for b, _ in CASES) >= 20


@pytest.mark.parametrize(("bundle", "root"), CASES, ids=lambda p: getattr(p, "parent", p).name)
def test_real_checkpoint_verifies(bundle: Path, root: Path, vectors: Path) -> None:
    for entry in _entries(bundle):
        verifier = _verifier(root, entry["logId"]["keyId"])
        proof = entry["inclusionProof"]
        envelope = proof["checkpoint"]["envelope"]
        cp = open_checkpoint(envelope, verifier)
        assert cp.size == int(proof["treeSize"])
        assert cp.root_hash == base64.b64decode(proof["rootHash"])
        kv = entry["kindVersion"]
        if (kv["kind"], kv["version"]) not in REKOR_V2_KINDS:  # Rekor v1: "<host> - <treeID>"
            host, _, tree_id = cp.origin.partition(" - ")
            assert host == verifier.name and tree_id.isdigit()
        else:  # Rekor v2: origin = signer name, C2SP-style (no spaces or '+')
            assert cp.origin == verifier.name
            assert open_checkpoint(envelope, verifier, origin=cp.origin, strict_origin=True) == cp
        # the note round-trips byte for byte, cosignature lines included
        assert SignedNote.parse(envelope).to_bytes() == envelope.encode()
        assert Checkpoint.from_text(SignedNote.parse(envelope).text).to_text() == (
            SignedNote.parse(envelope).text
        )


@pytest.mark.parametrize(("bundle", "root"), CASES[:4], ids=lambda p: getattr(p, "name", p))
def test_altered_real_checkpoint_is_rejected(bundle: Path, root: Path, vectors: Path) -> None:
    for entry in _entries(bundle):
        verifier = _verifier(root, entry["logId"]["keyId"])
        envelope: str = entry["inclusionProof"]["checkpoint"]["envelope"]
        size = entry["inclusionProof"]["treeSize"]
        with pytest.raises(CheckpointError):  # a different tree size under the same signature
            open_checkpoint(envelope.replace(f"\n{size}\n", f"\n{int(size) + 1}\n", 1), verifier)
        note = SignedNote.parse(envelope)
        with pytest.raises(CheckpointError):
            open_checkpoint(envelope, verifier, origin="example.com/other-log")
        for i, sig in enumerate(note.signatures):
            if (sig.name, sig.key_hint) != (verifier.name, verifier.key_hint):
                continue
            flipped = bytes([sig.signature[0] ^ 1]) + sig.signature[1:]
            bad = SignedNote(
                note.text,
                (
                    *note.signatures[:i],
                    type(sig)(sig.name, sig.key_hint, flipped),
                    *note.signatures[i + 1 :],
                ),
            )
            with pytest.raises(CheckpointError, match="does not verify"):
                verifier.verify(bad)


@pytest.mark.parametrize("case", sorted(REJECTED_HERE))
def test_conformance_checkpoint_failures_rejected(case: str, vectors: Path) -> None:
    bundle = CONFORMANCE / case / "bundle.sigstore.json"
    entries = _entries(bundle)
    assert entries, f"{case} has no checkpoint"
    for entry in entries:
        verifier = _verifier(_root_for(bundle), entry["logId"]["keyId"])
        with pytest.raises(REJECTED_HERE[case]):
            open_checkpoint(entry["inclusionProof"]["checkpoint"]["envelope"], verifier)


def test_wrong_roothash_case_is_a_bundle_level_failure(vectors: Path) -> None:
    bundle = CONFORMANCE / "checkpoint-wrong-roothash_fail" / "bundle.sigstore.json"
    (entry,) = _entries(bundle)
    verifier = _verifier(_root_for(bundle), entry["logId"]["keyId"])
    cp = open_checkpoint(entry["inclusionProof"]["checkpoint"]["envelope"], verifier)
    proof = entry["inclusionProof"]
    assert (cp.size, cp.root_hash) != (
        int(proof["treeSize"]),
        base64.b64decode(proof["rootHash"]),
    )


def test_every_checkpoint_case_is_classified(vectors: Path) -> None:
    names = {p.name for p in CONFORMANCE.glob("*checkpoint*") if p.name.endswith("_fail")}
    assert names == set(REJECTED_HERE) | {"checkpoint-wrong-roothash_fail"}
