"""Hostile bundles: a flipped bit (or off-by-one integer) in any field of a valid bundle must be
rejected with a keyless error, never accepted and never crash with another exception.

Fields that no verifier can bind are skipped and say why: the advisory DSSE ``keyid``, and the
``integratedTime`` of a Rekor v2 entry (no SET signs it; it is not used as a time).
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from _client_vectors import BEACON_POLICY, CASES, GHA, SP, case_root, read, root

from keyless.errors import Error
from keyless.verify.artifact import Artifact
from keyless.verify.errors import (
    ArtifactMismatchError,
    NotEnoughVerifiedTimesError,
    SignatureMismatchError,
)
from keyless.verify.policy import Identity, Policy
from keyless.verify.verifier import Verifier

BASES = ["happy-path-v0.3", "rekor2-happy-path", "happy-path-intoto-in-dsse-v3", "happy-path-v0.1"]
UNBOUND = {"keyid"}
INT_FIELDS = {"logIndex", "treeSize", "integratedTime"}
TEXT_FIELDS = {"mediaType", "kind", "version", "envelope", "algorithm", "payloadType"}

Path = tuple[str | int, ...]


def _leaves(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    else:
        yield path, value


def _set(doc: Any, path: Path, value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8 % len(b)] ^= 1 << (bit % 8)
    return bytes(b)


def _variants(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    rekor_v2 = doc["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["version"] == "0.0.2"
    for path, value in _leaves(doc):
        name = str(path[-1]) if not isinstance(path[-1], int) else str(path[-2])
        if name in UNBOUND or (rekor_v2 and name == "integratedTime"):
            continue
        if name in INT_FIELDS:
            for delta in (1, -1):
                v = copy.deepcopy(doc)
                _set(v, path, str(int(value) + delta))
                yield f"{path}{delta:+d}", v
        elif name in TEXT_FIELDS:
            raw = value.encode()
            for bit in (0, len(raw) * 4 + 1, len(raw) * 8 - 8):
                v = copy.deepcopy(doc)
                _set(v, path, _flip(raw, bit).decode("latin-1"))
                yield f"{path} bit {bit}", v
        elif isinstance(value, str):
            raw = base64.b64decode(value)
            for bit in (3, len(raw) * 4 + 2, len(raw) * 8 - 5):
                v = copy.deepcopy(doc)
                _set(v, path, base64.b64encode(_flip(raw, bit)).decode())
                yield f"{path} bit {bit}", v


#: sigstore-python vectors: (bundle, artifact, root, policy). ``bundle.txt.sigstore`` (its TSA
#: tokens are unverifiable and skipped by design) and the witnessed DSSE bundle (cosignature
#: lines are ignored by design) are not used here.
SP_BASES = {
    "staging-rekor-v2": (
        "staging-rekor-v2.txt.sigstore.json",
        "staging-rekor-v2.txt",
        "staging",
        Identity("https://github.com/login/oauth", "jku@goto.fi"),
    ),
    "github-whl": (
        "bundle_v3_github.whl.sigstore",
        "bundle_v3_github.whl",
        "production",
        Identity(
            GHA,
            "https://github.com/trailofbits/rfc8785.py/.github/workflows/"
            "release.yml@refs/tags/v0.1.2",
        ),
    ),
}


def _base(name: str) -> tuple[dict[str, Any], Verifier, Artifact, Policy]:
    if name in SP_BASES:
        bundle, artifact, trust, policy = SP_BASES[name]
        return (
            json.loads(read(SP / bundle)),
            Verifier(root(trust)),
            Artifact.from_path(SP / artifact),
            policy,
        )
    return (
        json.loads(read(CASES / name / "bundle.sigstore.json")),
        Verifier(case_root(name)),
        Artifact.from_path(CASES / "a.txt"),
        BEACON_POLICY,
    )


@pytest.mark.parametrize("case", BASES + sorted(SP_BASES))
def test_every_field_is_bound(case: str) -> None:
    doc, verifier, artifact, policy = _base(case)
    verifier.verify(json.dumps(doc), artifact, policy=policy)  # the original is valid
    count = 0
    accepted: list[str] = []
    for label, variant in _variants(doc):
        count += 1
        try:
            verifier.verify(json.dumps(variant), artifact, policy=policy)
        except Error:
            continue
        accepted.append(label)
    assert count > 30
    assert not accepted, f"tampered bundles accepted: {accepted}"


def test_targeted_tampering_of_sigstore_python_vectors() -> None:
    doc, verifier, artifact, policy = _base("github-whl")
    sig = doc["messageSignature"]
    forged = copy.deepcopy(doc)
    raw = bytearray(base64.b64decode(sig["signature"]))
    raw[-1] ^= 1
    forged["messageSignature"]["signature"] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(SignatureMismatchError):
        verifier.verify(json.dumps(forged), artifact, policy=policy)
    other_digest = copy.deepcopy(doc)
    other_digest["messageSignature"]["messageDigest"]["digest"] = base64.b64encode(
        b"\0" * 32
    ).decode()
    with pytest.raises(ArtifactMismatchError):
        verifier.verify(json.dumps(other_digest), artifact, policy=policy)

    doc, verifier, artifact, policy = _base("staging-rekor-v2")
    no_tsa = copy.deepcopy(doc)
    no_tsa["verificationMaterial"]["timestampVerificationData"] = {"rfc3161Timestamps": []}
    with pytest.raises(NotEnoughVerifiedTimesError):
        verifier.verify(json.dumps(no_tsa), artifact, policy=policy)
