"""Shared harness of the hostile-bundle tests: real bundles, one verifier per trusted root, and
the oracle every tampered variant must satisfy.

Not a conftest.py: a second ``conftest`` module would shadow tests/conftest.py for the
``from conftest import …`` used across the suite.

The oracle (protocols.md §9, contracts.md §4): verifying any bundle either succeeds or raises a
*specific* :class:`keyless.errors.VerificationError` subclass (never the bare base class, never
another exception: TypeError, KeyError, ValueError from a library, UnicodeError, RecursionError…),
whose message is one short line, and it returns quickly.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_public_key

from conftest import VECTORS, require
from keyless.errors import VerificationError
from keyless.formats.trustroot import TrustedRoot
from keyless.verify.artifact import Artifact
from keyless.verify.policy import Identity
from keyless.verify.verifier import Verifier

CONFORMANCE = VECTORS / "conformance" / "bundle-verify"
SP = VECTORS / "sigstore-python"
PRODUCTION = VECTORS / "public-good" / "production" / "trusted_root.json"
STAGING = VECTORS / "public-good" / "staging" / "trusted_root.json"
BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
GHA = "https://token.actions.githubusercontent.com"

#: a rejection message longer than this is not "one sentence" (it echoes hostile input).
MAX_MESSAGE = 1000
#: one verification of a hostile bundle must not take longer than this (seconds): a bound that
#: only a hang or a blow-up reaches (one takes ~50 ms; the suite may run loaded, under coverage)
MAX_SECONDS = 30.0

Json = Any
Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Case:
    """One real bundle that verifies, with everything needed to verify it."""

    name: str
    bundle: Path
    artifact: Path
    root: Path
    identity: str = BEACON
    issuer: str = GHA
    key: Path | None = None
    #: RFC 3161 tokens that do not count (unverifiable against the root): tampering may pass.
    idle_timestamps: bool = False

    def load(self) -> dict[str, Json]:
        require(self.bundle.exists(), f"test vector {self.bundle}")
        data: dict[str, Json] = json.loads(self.bundle.read_bytes())
        return data

    @property
    def is_dsse(self) -> bool:
        return "dsseEnvelope" in self.load()


def _conf(name: str, **kw: Any) -> Case:
    d = CONFORMANCE / name
    root = d / "trusted_root.json"
    art = d / "artifact"
    return Case(
        name,
        d / "bundle.sigstore.json",
        art if art.exists() else CONFORMANCE / "a.txt",
        root if root.exists() else PRODUCTION,
        key=(d / "key.pub") if (d / "key.pub").exists() else None,
        **kw,
    )


CASES: list[Case] = [
    _conf("happy-path-v0.1"),
    _conf("happy-path-v0.2"),
    _conf("happy-path-v0.3"),
    _conf("happy-path-intoto-in-dsse-v3"),
    _conf("intoto-with-custom-trust-root"),
    _conf("rekor2-happy-path"),
    _conf("rekor2-dsse-happy-path"),
    _conf("rekor2-checkpoint-cosigned"),
    _conf("managed-key-happy-path"),
    Case(
        "github-whl-v0.2",
        SP / "bundle_v3_github.whl.sigstore",
        SP / "bundle_v3_github.whl",
        PRODUCTION,
        "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2",
    ),
    Case(
        "rekor-v2+tsa",
        SP / "staging-rekor-v2.txt.sigstore.json",
        SP / "staging-rekor-v2.txt",
        STAGING,
        "jku@goto.fi",
        "https://github.com/login/oauth",
    ),
    Case("dsse-rekor-v2", SP / "a.dsse.staging-rekor-v2.txt.sigstore.json", VECTORS /
         "conformance" / "a.txt", STAGING),
    Case(
        "tsa-set-v0.3",
        SP / "bundle.txt.sigstore",
        SP / "bundle.txt",
        STAGING,
        "alexis.challande@trailofbits.com",
        "https://accounts.google.com",
        idle_timestamps=True,
    ),
]
BY_NAME = {c.name: c for c in CASES}
#: the sweeps skip bundles whose fields duplicate another case's (v0.2 = v0.1's entry and
#: signature; the conformance Rekor v2 DSSE bundle = sigstore-python's).
SWEEP = [c for c in CASES if c.name not in ("happy-path-v0.2", "rekor2-dsse-happy-path")]
#: …and the field sweeps also skip the checkpoint-only variant of rekor2-happy-path.
FIELD_SWEEP = [c for c in SWEEP if c.name != "rekor2-checkpoint-cosigned"]


@functools.cache
def verifier_for(root: Path) -> Verifier:
    """One verifier per trusted root, reused across variants as a long-running service would."""
    require(root.exists(), f"trusted root {root}")
    return Verifier(TrustedRoot.from_json(root.read_bytes()))


@functools.cache
def _artifact(path: Path) -> Artifact:
    return Artifact.from_bytes(path.read_bytes())


@functools.cache
def _key(path: Path) -> Any:
    return load_pem_public_key(path.read_bytes())


@dataclass(frozen=True)
class Outcome:
    """What one verification did: ``ok``, ``rejected`` (with the error) or ``crash``."""

    status: str
    error: BaseException | None = None
    seconds: float = 0.0

    def describe(self) -> str:
        if self.error is None:
            return self.status
        return f"{self.status}: {type(self.error).__name__}: {str(self.error)[:300]}"


def outcome_of(verify: Callable[[], object]) -> Outcome:
    """Run one verification and classify what it did; never raises (but Ctrl-C)."""
    start = time.perf_counter()
    try:
        verify()
    except VerificationError as exc:
        return Outcome("rejected", exc, time.perf_counter() - start)
    except BaseException as exc:  # the point: classify *anything* raised
        if isinstance(exc, KeyboardInterrupt):
            raise
        return Outcome("crash", exc, time.perf_counter() - start)
    return Outcome("ok", None, time.perf_counter() - start)


def run(case: Case, bundle: Json | bytes, *, verifier: Verifier | None = None) -> Outcome:
    """Verify ``bundle`` (JSON value or raw bytes) as ``case`` says; never raises."""
    data = bundle if isinstance(bundle, bytes) else dumps(bundle)
    v = verifier or verifier_for(case.root)
    art = _artifact(case.artifact)
    if case.key is not None:
        key = _key(case.key)
        return outcome_of(lambda: v.verify(data, art, key=key))
    policy = Identity(issuer=case.issuer, identity=case.identity)
    return outcome_of(lambda: v.verify(data, art, policy=policy))


def dumps(value: Json) -> bytes:
    """JSON text of a (possibly hostile) value; NaN/Infinity and lone surrogates allowed."""
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


def problem(outcome: Outcome, *, may_pass: bool = False) -> str | None:
    """Why ``outcome`` breaks the oracle, or None. ``may_pass``: the tampering is harmless."""
    if outcome.seconds > MAX_SECONDS:
        return f"took {outcome.seconds:.1f} s"
    if outcome.status == "ok":
        return None if may_pass else "accepted"
    if outcome.status == "crash":
        return outcome.describe()
    exc = outcome.error
    assert exc is not None
    if type(exc) is VerificationError:
        return f"unspecific VerificationError: {exc}"
    message = str(exc)
    if not message.strip():
        return f"{type(exc).__name__} with an empty message"
    if "\n" in message:
        return f"{type(exc).__name__} message spans several lines"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in message):
        return f"{type(exc).__name__} message holds control characters: {message[:80]!a}"
    if len(message) > MAX_MESSAGE:
        return f"{type(exc).__name__} message is {len(message)} characters long"
    return None


class TamperAccepted(AssertionError):
    """A tampered bundle verified (the security half of the oracle)."""


class UncleanRejection(AssertionError):
    """A crash, an unspecific or over-long error, or a slow verification (the robustness half)."""


def assert_all_ok(results: list[tuple[str, str | None]]) -> None:
    """Fail listing every variant that broke the oracle."""
    bad = [f"{label}: {why}" for label, why in results if why is not None]
    assert not bad, f"{len(bad)}/{len(results)} variants break the oracle:\n" + "\n".join(bad[:40])


def check(results: list[tuple[str, Outcome, bool]]) -> None:
    """Check (variant, outcome, may_pass) triples: first that no tampering was accepted
    (:class:`TamperAccepted`), then that every rejection was clean (:class:`UncleanRejection`)."""
    assert results
    accepted = [v for v, o, may_pass in results if o.status == "ok" and not may_pass]
    if accepted:
        raise TamperAccepted(
            f"{len(accepted)}/{len(results)} tampered variants verified: "
            + ", ".join(accepted[:20])
        )
    bad = [f"{v}: {why}" for v, o, _ in results if (why := problem(o, may_pass=True))]
    if bad:
        raise UncleanRejection(
            f"{len(bad)}/{len(results)} variants broke the oracle:\n" + "\n".join(bad[:40])
        )


# --- JSON paths -----------------------------------------------------------------------------


def get(obj: Json, path: Path_) -> Json:
    for p in path:
        obj = obj[p]
    return obj


def put(obj: Json, path: Path_, value: Json) -> Json:
    """A deep copy of ``obj`` with ``path`` set to ``value``."""
    out = copy.deepcopy(obj)
    parent = get(out, path[:-1])
    parent[path[-1]] = value
    return out


def drop(obj: Json, path: Path_) -> Json:
    out = copy.deepcopy(obj)
    parent = get(out, path[:-1])
    del parent[path[-1]]
    return out


def walk(obj: Json, path: Path_ = ()) -> Iterator[Path_]:
    """Every path below the root, containers before their contents."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield (*path, k)
            yield from walk(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield (*path, i)
            yield from walk(v, (*path, i))


def label(path: Path_) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")


B64_KEYS = {
    "rawBytes",
    "signature",
    "digest",
    "keyId",
    "signedEntryTimestamp",
    "rootHash",
    "canonicalizedBody",
    "signedTimestamp",
    "payload",
    "sig",
}


def is_b64(path: Path_) -> bool:
    last = path[-1]
    return last in B64_KEYS or (isinstance(last, int) and path[-2] == "hashes")


def b64_paths(bundle: Json) -> list[Path_]:
    return [p for p in walk(bundle) if isinstance(get(bundle, p), str) and is_b64(p)]


def decode(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


def flip_positions(n: int, seed: str, count: int = 12) -> list[tuple[int, int]]:
    """(byte, bit) positions to flip: both ends, the middle and seeded random ones."""
    if n == 0:
        return []
    rng = random.Random(seed)
    fixed = {0, 1, n // 2, n - 2, n - 1}
    picks = sorted({i for i in fixed if 0 <= i < n} | {rng.randrange(n) for _ in range(count)})
    return [(i, rng.randrange(8)) for i in picks]


def flip(data: bytes, byte: int, bit: int) -> bytes:
    b = bytearray(data)
    b[byte] ^= 1 << bit
    return bytes(b)


def tlog(bundle: Json) -> dict[str, Json]:
    entry: dict[str, Json] = bundle["verificationMaterial"]["tlogEntries"][0]
    return entry


TLOG: Path_ = ("verificationMaterial", "tlogEntries", 0)
PROOF: Path_ = (*TLOG, "inclusionProof")
CHECKPOINT: Path_ = (*PROOF, "checkpoint", "envelope")


def cert_path(bundle: Json) -> Path_ | None:
    vm = bundle["verificationMaterial"]
    if "certificate" in vm:
        return ("verificationMaterial", "certificate", "rawBytes")
    if "x509CertificateChain" in vm:
        return ("verificationMaterial", "x509CertificateChain", "certificates", 0, "rawBytes")
    return None


def signature_path(bundle: Json) -> Path_:
    if "messageSignature" in bundle:
        return ("messageSignature", "signature")
    return ("dsseEnvelope", "signatures", 0, "sig")


Mutation = Callable[[Json], Json]


# --- RFC 3161 token layout ------------------------------------------------------------------

ID_CT_TST_INFO = bytes.fromhex("060b2a864886f70d0109100104")


def _der_length(der: bytes, at: int) -> tuple[int, int]:
    """(length, offset of the content) of the DER element whose length byte is at ``at``."""
    first = der[at]
    if first < 0x80:
        return first, at + 1
    n = first & 0x7F
    return int.from_bytes(der[at + 1 : at + 1 + n], "big"), at + 1 + n


def signed_token_bytes(der: bytes) -> range:
    """The TSTInfo inside a TimeStampResp (eContent [0] EXPLICIT OCTET STRING): the signed part
    whose alteration must never verify. Outside it, a flip may be harmless (unsigned CMS fields:
    versions, signatureAlgorithm, certificate sets) or caught by the signature."""
    at = der.find(ID_CT_TST_INFO)
    assert at > 0, "no id-ct-TSTInfo in the token"
    at += len(ID_CT_TST_INFO)
    assert der[at] == 0xA0
    _, at = _der_length(der, at + 1)
    assert der[at] == 0x04
    length, start = _der_length(der, at + 1)
    return range(start, start + length)


# --- which changes are harmless -------------------------------------------------------------

OPTIONAL = {
    "messageSignature.messageDigest",
    "dsseEnvelope.signatures[0].keyid",
    "verificationMaterial.publicKey.hint",
}
TIMESTAMPS = "verificationMaterial.timestampVerificationData"


def rekor_v2(bundle: Json) -> bool:
    kv = tlog(bundle)["kindVersion"]
    return bool(kv["kind"] in ("hashedrekord", "dsse") and kv["version"] == "0.0.2")


def harmless(case: Case, bundle: Json, path: Path_, new: Json, *, dropped: bool) -> bool:
    """Whether replacing (or dropping) ``path`` may leave a bundle that still verifies."""
    lab = label(path)
    old = get(bundle, path)
    absent = dropped or new is None or new == {} or new == []
    if not dropped and (new == old or (type(new) is int and str(new) == old)):
        return True
    if lab in OPTIONAL or lab.startswith("verificationMaterial.publicKey"):
        return absent or isinstance(new, str) or (lab.endswith("publicKey") and new == {})
    entry = tlog(bundle)
    has_set = "inclusionPromise" in entry and not rekor_v2(bundle)
    has_tokens = bool(bundle["verificationMaterial"].get(TIMESTAMPS.split(".")[1]))
    if lab.startswith(TIMESTAMPS) and (has_set or case.idle_timestamps):
        return absent or lab.endswith("]") or lab.endswith("rfc3161Timestamps")
    if lab == label((*TLOG, "inclusionPromise")) and has_tokens and not case.idle_timestamps:
        return absent
    if lab == label((*TLOG, "inclusionProof", "hashes")) and old == []:
        return absent
    if lab == label((*TLOG, "integratedTime")) and rekor_v2(bundle):
        return dropped or new is None or (type(new) is int and 0 <= new < 2**63)
    return False
