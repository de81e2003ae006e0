"""vkeys, cosignatures and witness policies (C2SP signed-note, tlog-cosignature, tlog-policy)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from conftest import ROOT
from keyless.formats.checkpoint import Checkpoint, sign_checkpoint
from keyless.formats.cosignature import (
    Ed25519Cosigner,
    MLDSA44Cosigner,
    mldsa_supported,
    verifier_for_vkey,
)
from keyless.formats.note import SignedNote
from keyless.formats.note_keys import NoteSigner, name_from_base_url
from keyless.formats.vkey import VerifierKey, VkeyError
from keyless.formats.witnesspolicy import PolicyError, WitnessPolicy, WitnessPolicyError
from keyless.keys import InMemorySigner

ASSETS = ROOT / "tests" / "assets"
#: the three witnesses that cosigned a real staging Rekor v2 checkpoint (sigstore-python asset)
STAGING_WITNESSES = [
    "witness.stagemole.eu+67f7aea0+BEqSG3yu9YrmcM3BHvQYTxwFj3uSWakQepafafpUqklv",
    "staging.witness.transparency.goog/ring-any-bells+2e1a8dc9+"
    "BG5JTpLc3FJtwzgh1Uv+Qelz9qeOH2bfWjS1s0s+y4rL",
    "witness.navigli.sunlight.geomys.org+a3e00fe2+BNy/co4C1Hn1p+INwJrfUlgz7W55dSZReusH/GhUhJ/G",
]


def _staging() -> tuple[str, str]:
    """(log vkey, checkpoint envelope) of the staging Rekor v2 bundle."""
    bundle = json.loads((ASSETS / "sigstore-python" / "a.dsse.staging-rekor-v2.txt.sigstore.json")
                        .read_text())
    envelope = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"][
        "envelope"
    ]
    origin = envelope.split("\n", 1)[0]
    root = json.loads((ASSETS / "public-good" / "staging" / "trusted_root.json").read_text())
    for tlog in root["tlogs"]:
        if name_from_base_url(tlog["baseUrl"]) == origin:
            key = serialization.load_der_public_key(
                base64.b64decode(tlog["publicKey"]["rawBytes"])
            )
            assert isinstance(key, ed25519.Ed25519PublicKey)
            return VerifierKey.for_ed25519(origin, key).encode(), envelope
    raise AssertionError(f"no staging log {origin}")


def test_vkey_round_trip_and_plus_in_base64() -> None:
    for text in STAGING_WITNESSES:
        assert VerifierKey.parse(text).encode() == text  # the second one has '+' in its key


def test_vkey_with_wrong_key_id_is_refused() -> None:
    name, _kid, key = STAGING_WITNESSES[0].split("+", 2)
    with pytest.raises(VkeyError, match="does not match"):
        VerifierKey.parse(f"{name}+00000000+{key}")


def test_real_staging_cosignatures_satisfy_a_policy() -> None:
    """Interop: three real witnesses' cosignatures on a staging Rekor v2 checkpoint verify."""
    log_vkey, envelope = _staging()
    lines = [f"log {log_vkey}"]
    lines += [f"witness w{i} {v}" for i, v in enumerate(STAGING_WITNESSES)]
    lines += ["group all-three all w0 w1 w2", "quorum all-three"]
    witnessed = WitnessPolicy.parse("\n".join(lines)).verify(envelope)
    assert set(witnessed.cosigned_at) == {"w0", "w1", "w2"}
    assert witnessed.cosigned_at["w0"] == 1778700214


def test_tampered_cosignature_rejects_the_checkpoint() -> None:
    log_vkey, envelope = _staging()
    note = SignedNote.parse(envelope)
    bad = [
        s if s.name != "witness.stagemole.eu" else type(s)(s.name, s.key_hint,
                                                          s.signature[:-1] + b"\0")
        for s in note.signatures
    ]
    tampered = SignedNote(note.text, tuple(bad)).to_bytes()
    policy = WitnessPolicy.parse(f"log {log_vkey}\nwitness a {STAGING_WITNESSES[1]}\n"
                                 f"witness b {STAGING_WITNESSES[0]}\ngroup g any a b\nquorum g\n")
    with pytest.raises(WitnessPolicyError, match="does not verify"):
        policy.verify(tampered)


def test_quorum_counts_only_listed_witnesses() -> None:
    log_vkey, envelope = _staging()
    other = Ed25519Cosigner("someone.else", ed25519.Ed25519PrivateKey.generate()).vkey
    policy = WitnessPolicy.parse(
        f"log {log_vkey}\nwitness a {STAGING_WITNESSES[0]}\nwitness b {other}\n"
        "group g 2 a b\nquorum g\n"
    )
    with pytest.raises(WitnessPolicyError, match="quorum"):
        policy.verify(envelope)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("quorum none\n", "no log"),
        ("log {log}\n", "no quorum"),
        ("log {log}\nquorum x\n", "not defined"),
        ("log {log}\nwitness a {w}\nwitness b {w}\nquorum a\n", "already listed"),
        ("log {log}\nwitness none {w}\nquorum none\n", "reserved"),
        ("log {log}\nwitness a {w}\ngroup g 2 a\nquorum g\n", "threshold"),
        ("log {log}\nwitness a {w}\ngroup g 0 a\nquorum g\n", "threshold"),
        ("log {log}\nwitness a {log2}\nquorum a\n", "cosignature key"),
        ("log {log}\nquorum none\nquorum none\n", "exactly one"),
        ("log {log}\nfrobnicate\nquorum none\n", "unknown keyword"),
    ],
)
def test_policy_parse_errors(text: str, problem: str) -> None:
    log_vkey, _ = _staging()
    log2 = VerifierKey.for_ed25519("x.example", ed25519.Ed25519PrivateKey.generate().public_key())
    with pytest.raises(PolicyError, match=problem):
        WitnessPolicy.parse(text.format(log=log_vkey, w=STAGING_WITNESSES[0], log2=log2))


def _checkpoint(size: int = 5, extensions: tuple[str, ...] = ()) -> tuple[bytes, NoteSigner]:
    signer = NoteSigner.ed25519("log.example/rekor",
                                InMemorySigner(ed25519.Ed25519PrivateKey.generate()))
    cp = Checkpoint("log.example/rekor", size, bytes(range(32)), extensions)
    return sign_checkpoint(cp, signer), signer


def test_ed25519_cosigner_round_trip() -> None:
    note, _ = _checkpoint()
    parsed = SignedNote.parse(note)
    cosigner = Ed25519Cosigner("w.example", ed25519.Ed25519PrivateKey.generate())
    line = cosigner.cosign(parsed.text, 1_700_000_000)
    verifier = verifier_for_vkey(VerifierKey.parse(cosigner.vkey.encode()))
    assert verifier.check(parsed.text, line.signature)
    assert not verifier.check(parsed.text.replace(b"5", b"6"), line.signature)


def test_mldsa_cosigner_round_trip_and_refuses_extensions() -> None:
    assert mldsa_supported()  # cryptography >= 47 with ML-DSA (this environment)
    note, _ = _checkpoint()
    text = SignedNote.parse(note).text
    cosigner = MLDSA44Cosigner("w.example", bytes(range(32)))
    assert cosigner.vkey.encode().split("+")[2].startswith("B")
    line = cosigner.cosign(text, 1_700_000_000)
    verifier = verifier_for_vkey(VerifierKey.parse(cosigner.vkey.encode()))
    assert verifier.check(text, line.signature)
    forged = (1_700_000_001).to_bytes(8, "big") + line.signature[8:]
    assert not verifier.check(text, forged)  # the timestamp is signed
    with_ext, _ = _checkpoint(extensions=("ext",))
    with pytest.raises(Exception, match="extension"):
        cosigner.cosign(SignedNote.parse(with_ext).text, 1_700_000_000)
