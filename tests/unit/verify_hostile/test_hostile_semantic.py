"""Meaningful tampering of real bundles, each with the specific error it must raise.

Originals first (the harness can pass), then: wrong policy/artifact/key/root, media types,
tlog entry count and swaps between bundles, inclusion-proof shape, checkpoint framing, base64
spellings, unknown fields, certificate chains, RFC 3161 token sets, DSSE envelopes, and every
conformance ``_fail`` case through the library (a clean specific error, never a crash).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from hostile_util import (
    BY_NAME,
    CASES,
    CHECKPOINT,
    CONFORMANCE,
    PRODUCTION,
    PROOF,
    STAGING,
    SWEEP,
    TLOG,
    Case,
    Json,
    Path_,
    check,
    decode,
    encode,
    get,
    put,
    run,
    tlog,
)

from conftest import require
from keyless.errors import Error, VerificationError
from keyless.formats.bundle import BUNDLE_MEDIA_TYPES
from keyless.formats.trustroot import TrustedRoot
from keyless.merkle import InclusionProofError
from keyless.verify.errors import (
    ArtifactMismatchError,
    CertificateChainError,
    CertificateExpiredAtSigningError,
    CheckpointError,
    DSSEError,
    EmbeddedSCTError,
    IdentityMismatchError,
    InclusionPromiseError,
    KeyMismatchError,
    LogEntryMismatchError,
    MalformedBundleError,
    MissingInclusionProofError,
    NotEnoughVerifiedTimesError,
    SignatureMismatchError,
    TimestampError,
    UntrustedLogError,
)
from keyless.verify.verifier import Verifier

V01 = BY_NAME["happy-path-v0.1"]
V03 = BY_NAME["happy-path-v0.3"]
REKOR2 = BY_NAME["rekor-v2+tsa"]
DSSE = BY_NAME["happy-path-intoto-in-dsse-v3"]
TOKENS: Path_ = ("verificationMaterial", "timestampVerificationData", "rfc3161Timestamps")
CHAIN: Path_ = ("verificationMaterial", "x509CertificateChain", "certificates")


def expect(case: Case, bundle: Json | bytes, error: type[VerificationError] | tuple[type, ...],
           what: str = "variant") -> None:
    """Rejected cleanly (hostile_util.check) *and* with the given class."""
    outcome = run(case, bundle)
    check([(what, outcome, False)])
    assert isinstance(outcome.error, error), f"{what}: {outcome.describe()}"


def accept(case: Case, bundle: Json | bytes) -> None:
    outcome = run(case, bundle)
    assert outcome.status == "ok", outcome.describe()


# --- the harness can pass ----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_original_verifies(case: Case) -> None:
    accept(case, case.load())


@pytest.mark.parametrize("case", [c for c in CASES if c.key is None],
                         ids=[c.name for c in CASES if c.key is None])
def test_original_with_another_identity_is_rejected(case: Case) -> None:
    other = Case(case.name, case.bundle, case.artifact, case.root, case.identity + "x", case.issuer)
    expect(other, case.load(), IdentityMismatchError)
    other = Case(case.name, case.bundle, case.artifact, case.root, case.identity, "https://x")
    expect(other, case.load(), IdentityMismatchError)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_original_with_another_artifact_is_rejected(case: Case) -> None:
    other = Case(case.name, case.bundle, case.bundle, case.root, case.identity, case.issuer,
                 case.key)
    expect(other, case.load(), (ArtifactMismatchError, SignatureMismatchError))


def test_managed_key_bundle_without_its_key_and_keyless_bundle_with_a_key() -> None:
    mk = BY_NAME["managed-key-happy-path"]
    expect(Case("mk", mk.bundle, mk.artifact, mk.root), mk.load(), KeyMismatchError)
    expect(Case("v03", V03.bundle, V03.artifact, V03.root, key=mk.key), V03.load(),
           KeyMismatchError)


def test_bundles_against_the_other_instance_are_rejected() -> None:
    expect(Case("s", REKOR2.bundle, REKOR2.artifact, PRODUCTION, REKOR2.identity, REKOR2.issuer),
           REKOR2.load(), VerificationError)
    expect(Case("p", V03.bundle, V03.artifact, STAGING), V03.load(), CertificateChainError)


def test_verifier_state_survives_hostile_bundles() -> None:
    """Caches (chain stores, TSA verifiers) are not poisoned: after hostile variants through the
    same verifier, every original of that root still verifies."""
    for case in SWEEP:
        bundle = case.load()
        for path in (TOKENS, CHAIN, ("verificationMaterial", "certificate"), TLOG):
            try:
                get(bundle, path)
            except (KeyError, IndexError):
                continue
            for value in ([{"signedTimestamp": "MAA="}], {"rawBytes": "MAA="}, "x", None):
                run(case, put(bundle, path, value))
    for case in CASES:
        accept(case, case.load())


# --- media type --------------------------------------------------------------------------------


@pytest.mark.parametrize("media_type", [*BUNDLE_MEDIA_TYPES, "application/json", ""])
@pytest.mark.parametrize("name", ["happy-path-v0.1", "happy-path-v0.3"])
def test_media_type(name: str, media_type: str) -> None:
    case = BY_NAME[name]
    bundle = put(case.load(), ("mediaType",), media_type)
    chain_form = name == "happy-path-v0.1"
    version = BUNDLE_MEDIA_TYPES.get(media_type)
    if version is not None and (version != "0.3") == chain_form:
        accept(case, bundle)  # v0.1 and v0.2 share the chain form; both v0.3 spellings
    else:
        expect(case, bundle, MalformedBundleError)


def test_media_type_spelling_is_exact() -> None:
    for spelling in (V03.load()["mediaType"].upper(), V03.load()["mediaType"] + " ",
                     "application/vnd.dev.sigstore.bundle+json;version=99.9"):
        expect(V03, put(V03.load(), ("mediaType",), spelling), MalformedBundleError, spelling)


# --- tlog entries ------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 2, 3, 1000])
def test_tlog_entry_count_other_than_one(count: int) -> None:
    bundle = V03.load()
    entries = [tlog(bundle)] * count
    expect(V03, put(bundle, ("verificationMaterial", "tlogEntries"), entries),
           MalformedBundleError)


def test_second_entry_from_another_bundle() -> None:
    bundle = V03.load()
    other = tlog(BY_NAME["github-whl-v0.2"].load())
    expect(V03, put(bundle, ("verificationMaterial", "tlogEntries"), [tlog(bundle), other]),
           MalformedBundleError)


def _swap_pairs() -> list[Any]:
    out = []
    for a in SWEEP:
        for b in SWEEP:
            if a is not b:
                out.append(pytest.param(a, b, id=f"{b.name}>{a.name}"))
    return out


@pytest.mark.parametrize(("case", "donor"), _swap_pairs())
def test_tlog_entry_swapped_in_from_another_bundle(case: Case, donor: Case) -> None:
    bundle, other = case.load(), donor.load()
    if tlog(bundle)["canonicalizedBody"] == tlog(other)["canonicalizedBody"]:
        accept(case, put(bundle, TLOG, tlog(other)))  # the same entry (another checkpoint)
        return
    expect(case, put(bundle, TLOG, tlog(other)), VerificationError)


@pytest.mark.parametrize(("case", "donor"), _swap_pairs()[::5])
def test_verification_material_swapped_in_from_another_bundle(case: Case, donor: Case) -> None:
    bundle, other = case.load(), donor.load()
    if tlog(bundle)["canonicalizedBody"] == tlog(other)["canonicalizedBody"]:
        return  # same signing event
    mutated = put(bundle, ("verificationMaterial",), other["verificationMaterial"])
    expect(case, mutated, VerificationError)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("logId", {"keyId": encode(bytes(32))}, UntrustedLogError),
        ("logId", {"keyId": ""}, UntrustedLogError),
        ("kindVersion", {"kind": "dsse", "version": "0.0.1"}, LogEntryMismatchError),
        ("kindVersion", {"kind": "intoto", "version": "0.0.2"}, LogEntryMismatchError),
        ("kindVersion", {"kind": "hashedrekord", "version": "0.0.3"}, MalformedBundleError),
        ("kindVersion", {"kind": "rekord", "version": "0.0.1"}, MalformedBundleError),
        ("kindVersion", {"kind": "hashedrekord", "version": "0.0.2"}, VerificationError),
        ("inclusionProof", None, MissingInclusionProofError),
        ("inclusionPromise", None, NotEnoughVerifiedTimesError),
        ("inclusionPromise", {"signedEntryTimestamp": "MEUCIQ=="}, InclusionPromiseError),
        ("canonicalizedBody", "", InclusionProofError),
        ("canonicalizedBody", encode(b"{}"), InclusionProofError),
        ("logIndex", "0", InclusionPromiseError),
    ],
)
def test_rekor_v1_entry_field(field: str, value: Json, error: type[VerificationError]) -> None:
    expect(V03, put(V03.load(), (*TLOG, field), value), error, f"{field}={value}")


def test_rekor_v2_entry_fields() -> None:
    bundle = REKOR2.load()
    expect(REKOR2, put(bundle, (*TLOG, "inclusionPromise"), {"signedEntryTimestamp": "MEUCIQ=="}),
           InclusionPromiseError, "a SET on a Rekor v2 entry")
    index = int(get(bundle, (*TLOG, "logIndex")))
    expect(REKOR2, put(bundle, (*TLOG, "logIndex"), str(index + 1)), LogEntryMismatchError,
           "entry index ≠ proof index")
    accept(REKOR2, put(bundle, (*TLOG, "integratedTime"), "1700000000"))  # unbound in Rekor v2
    expect(REKOR2, put(bundle, TOKENS, []), NotEnoughVerifiedTimesError, "no token")


# --- inclusion proof ---------------------------------------------------------------------------


def _proof_variants(bundle: Json) -> list[tuple[str, Path_, Json]]:
    size = int(get(bundle, (*PROOF, "treeSize")))
    hashes = get(bundle, (*PROOF, "hashes"))
    return [
        ("tree size 0", (*PROOF, "treeSize"), "0"),
        ("index = size", (*PROOF, "logIndex"), str(size)),
        ("index > size", (*PROOF, "logIndex"), str(size + 10)),
        ("index int64 max", (*PROOF, "logIndex"), str(2**63 - 1)),
        ("size int64 max", (*PROOF, "treeSize"), str(2**63 - 1)),
        ("size + 1", (*PROOF, "treeSize"), str(size + 1)),
        ("size - 1", (*PROOF, "treeSize"), str(size - 1)),
        ("one hash too many", (*PROOF, "hashes"), [*hashes, encode(bytes(32))]),
        ("one hash too few", (*PROOF, "hashes"), hashes[:-1]),
        ("100000 hashes", (*PROOF, "hashes"), [encode(bytes(32))] * 100_000),
        ("hashes reversed", (*PROOF, "hashes"), hashes[::-1]),
        ("31-byte hash", (*PROOF, "hashes"), [encode(bytes(31)), *hashes[1:]]),
        ("33-byte hash", (*PROOF, "hashes"), [encode(bytes(33)), *hashes[1:]]),
        ("empty root", (*PROOF, "rootHash"), ""),
        ("31-byte root", (*PROOF, "rootHash"), encode(bytes(31))),
    ]


@pytest.mark.parametrize("name", ["happy-path-v0.3", "rekor-v2+tsa", "dsse-rekor-v2"])
def test_inclusion_proof_shape(name: str) -> None:
    case = BY_NAME[name]
    bundle = case.load()
    for what, path, value in _proof_variants(bundle):
        if what == "hashes reversed" and len(set(get(bundle, path))) < 2:
            continue
        if what == "one hash too few" and not get(bundle, path):
            continue
        expect(case, put(bundle, path, value), (InclusionProofError, CheckpointError,
                                                LogEntryMismatchError), what)


# --- checkpoint --------------------------------------------------------------------------------


def _checkpoint_variants(envelope: str) -> list[tuple[str, str]]:
    text, sigs = envelope.split("\n\n", 1)
    lines = text.split("\n")
    sig_lines = sigs.splitlines(keepends=True)
    return [
        ("no signature lines", text + "\n\n"),
        ("no blank line", text + "\n" + sigs),
        ("101 signature lines", text + "\n\n" + sig_lines[0] * 101),
        ("CRLF", envelope.replace("\n", "\r\n")),
        ("BOM", "\ufeff" + envelope),
        ("empty", ""),
        ("no final newline", envelope[:-1]),
        ("origin with a space", envelope.replace(lines[0], lines[0] + " x", 1)),
        ("origin homoglyph", envelope.replace(lines[0], lines[0].replace("e", "\u0435", 1), 1)),
        ("origin empty", envelope.replace(lines[0], "", 1)),
        ("size + 1", "\n".join([lines[0], str(int(lines[1]) + 1), *lines[2:]]) + "\n\n" + sigs),
        ("size with leading zero", "\n".join([lines[0], "0" + lines[1], *lines[2:]]) + "\n\n"
         + sigs),
        ("size Arabic-Indic", "\n".join([lines[0], "\u0661", *lines[2:]]) + "\n\n" + sigs),
        ("size negative", "\n".join([lines[0], "-" + lines[1], *lines[2:]]) + "\n\n" + sigs),
        ("root not base64", "\n".join([*lines[:2], "!" * 44, *lines[3:]]) + "\n\n" + sigs),
        ("root 31 bytes", "\n".join([*lines[:2], encode(bytes(31)), *lines[3:]]) + "\n\n" + sigs),
        ("extension line added", text + "\nextra\n\n" + sigs),
        ("empty extension", text + "\n\n\n" + sigs),
        ("only the text", text),
        ("1 MB signature line", text + "\n\n\u2014 x " + "A" * (1 << 20) + "\n"),
        ("signature not base64", text + "\n\n\u2014 " + lines[0].split(" ")[0] + " !!!!\n"),
        ("signature 4 bytes", text + "\n\n\u2014 " + lines[0].split(" ")[0] + " AAAAAA==\n"),
        ("hyphen instead of em dash", envelope.replace("\u2014", "-")),
        ("NUL in text", envelope.replace("\n", "\x00\n", 1)),
        ("note repeated", envelope * 2),
    ]


@pytest.mark.parametrize("name", ["happy-path-v0.3", "rekor-v2+tsa", "rekor2-checkpoint-cosigned"])
def test_checkpoint_framing(name: str) -> None:
    case = BY_NAME[name]
    bundle = case.load()
    for what, envelope in _checkpoint_variants(get(bundle, CHECKPOINT)):
        expect(case, put(bundle, CHECKPOINT, envelope), (CheckpointError, InclusionProofError),
               what)


def test_checkpoint_without_the_log_signature_but_with_witnesses() -> None:
    case = BY_NAME["rekor2-checkpoint-cosigned"]
    bundle = case.load()
    text, sigs = get(bundle, CHECKPOINT).split("\n\n", 1)
    origin = text.split("\n")[0]
    witnesses = [line for line in sigs.splitlines(keepends=True)
                 if not line.startswith(f"\u2014 {origin} ")]
    assert witnesses and len(witnesses) < len(sigs.splitlines())
    expect(case, put(bundle, CHECKPOINT, text + "\n\n" + "".join(witnesses)), CheckpointError)
    accept(case, put(bundle, CHECKPOINT, text + "\n\n" + sigs + "".join(witnesses)))


# --- base64 spellings and unknown fields -------------------------------------------------------


def test_base64_spellings() -> None:
    """protobuf-JSON (Go protojson) accepts the URL-safe alphabet, missing padding and line
    breaks; anything else is malformed."""
    path = ("messageSignature", "signature")
    bundle = V03.load()
    sig = get(bundle, path)
    for ok in (sig.replace("+", "-").replace("/", "_"), sig.rstrip("="), "\n".join(sig)):
        accept(V03, put(bundle, path, ok))
    for bad in (" ".join(sig), sig + "é", sig + "====", "=" + sig, sig[:-2] + "=" * 5, "\x00",
                sig + "\u200b", sig.replace("A", "\uff21")):
        expect(V03, put(bundle, path, bad), MalformedBundleError, f"{bad[:12]!a}…")


def _objects(value: Json, path: Path_ = ()) -> list[Path_]:
    out = []
    if isinstance(value, dict):
        out.append(path)
        for k, v in value.items():
            out.extend(_objects(v, (*path, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_objects(v, (*path, i)))
    return out


@pytest.mark.parametrize("name", ["happy-path-v0.1", "rekor-v2+tsa", DSSE.name])
def test_unknown_field_in_any_object(name: str) -> None:
    """(DSSE signature objects: test_hostile_regressions.py.)"""
    case = BY_NAME[name]
    bundle = case.load()
    for path in _objects(bundle):
        if path[:2] == ("dsseEnvelope", "signatures"):
            continue
        mutated = json.loads(json.dumps(bundle))
        get(mutated, path)["unknownField"] = 1
        expect(case, mutated, MalformedBundleError, f"unknown field in {path}")


# --- certificate chains ------------------------------------------------------------------------


def _ca(case: Case, authority: int, index: int) -> dict[str, str]:
    root = json.loads(case.root.read_bytes())
    raw: str = root["certificateAuthorities"][authority]["certChain"]["certificates"][index][
        "rawBytes"]
    return {"rawBytes": raw}


def test_certificate_chain_with_extra_certificates() -> None:
    bundle = V01.load()
    leaf = get(bundle, CHAIN)[0]
    intermediate, root = _ca(V01, 1, 0), _ca(V01, 1, -1)
    accept(V01, put(bundle, CHAIN, [leaf, intermediate]))
    accept(V01, put(bundle, CHAIN, [leaf, *[intermediate] * 100]))  # ignored, not trusted
    expect(V01, put(bundle, CHAIN, [leaf, intermediate, root]), CertificateChainError, "root")
    expect(V01, put(bundle, CHAIN, [leaf, root]), CertificateChainError, "root only")
    expect(V01, put(bundle, CHAIN, [intermediate, leaf]), CertificateChainError, "leaf second")
    expect(V01, put(bundle, CHAIN, [leaf, {"rawBytes": "MAA="}]), MalformedBundleError, "garbage")
    expect(V01, put(bundle, CHAIN, [leaf, {"rawBytes": ""}]), MalformedBundleError, "empty")
    expect(V01, put(bundle, CHAIN, []), MalformedBundleError, "no certificate")
    other = get(BY_NAME["github-whl-v0.2"].load(), CHAIN)[0]
    expect(V01, put(bundle, CHAIN, [other]), VerificationError, "another leaf")


def test_leaf_certificate_replaced() -> None:
    bundle = V03.load()
    path = ("verificationMaterial", "certificate", "rawBytes")
    for what, value in [("intermediate", _ca(V03, 1, 0)["rawBytes"]),
                        ("root", _ca(V03, 1, -1)["rawBytes"]),
                        ("truncated", encode(decode(get(bundle, path))[:-1])),
                        ("trailing byte", encode(decode(get(bundle, path)) + b"\x00")),
                        ("PEM instead of DER", encode(b"-----BEGIN CERTIFICATE-----\n")),
                        ("empty", "")]:
        expect(V03, put(bundle, path, value), VerificationError, what)


# --- RFC 3161 tokens ---------------------------------------------------------------------------


def test_rfc3161_token_sets() -> None:
    bundle = REKOR2.load()
    tokens = get(bundle, TOKENS)
    garbage = [{"signedTimestamp": encode(bytes([i]))} for i in range(32)]
    expect(REKOR2, put(bundle, TOKENS, tokens * 2), TimestampError, "duplicate")
    expect(REKOR2, put(bundle, TOKENS, tokens + garbage), TimestampError, "33 tokens")
    expect(REKOR2, put(bundle, TOKENS, [{"signedTimestamp": "MAA="}]), TimestampError, "empty SEQ")
    expect(REKOR2, put(bundle, TOKENS, [{"signedTimestamp": ""}]), TimestampError, "empty")
    expect(REKOR2, put(bundle, TOKENS, [{"signedTimestamp": encode(b"\x30\x84\x7f\xff\xff\xff")}]),
           TimestampError, "length past the end")
    expect(REKOR2, put(bundle, TOKENS, [{"signedTimestamp": encode(b"\x30\x80" * 5000)}]),
           TimestampError, "indefinite lengths")
    expect(REKOR2, put(bundle, TOKENS, [{"signedTimestamp": encode(b"\x30\x82\x10\x00" * 2000)}]),
           TimestampError, "nested lengths")
    foreign = get(BY_NAME["tsa-set-v0.3"].load(), TOKENS)
    expect(REKOR2, put(bundle, TOKENS, foreign), NotEnoughVerifiedTimesError, "foreign tokens")
    dsse_token = get(BY_NAME["dsse-rekor-v2"].load(), TOKENS)
    expect(REKOR2, put(bundle, TOKENS, dsse_token), NotEnoughVerifiedTimesError, "other signature")
    accept(REKOR2, put(bundle, TOKENS, tokens + dsse_token))  # an unverifiable token is skipped


def test_rfc3161_token_on_a_root_without_tsa() -> None:
    """protocols.md §9 step 1: tokens in the bundle but no TSA in the trusted root is an error
    (even with a SET); with the TSA, the foreign token is merely skipped."""
    bundle = V03.load()
    token = get(REKOR2.load(), TOKENS)
    mutated = put(bundle, ("verificationMaterial", "timestampVerificationData"),
                  {"rfc3161Timestamps": token})
    accept(V03, mutated)
    root = json.loads(V03.root.read_bytes())
    root["timestampAuthorities"] = []
    verifier = Verifier(TrustedRoot.from_json(root))
    outcome = run(V03, mutated, verifier=verifier)
    check([("token, root without TSA", outcome, False)])
    assert isinstance(outcome.error, TimestampError), outcome.describe()
    assert run(V03, bundle, verifier=verifier).status == "ok"


# --- DSSE --------------------------------------------------------------------------------------


def test_dsse_envelope_tampering() -> None:
    bundle = DSSE.load()
    env = ("dsseEnvelope",)
    sigs = get(bundle, (*env, "signatures"))
    payload = json.loads(decode(get(bundle, (*env, "payload"))))
    for what, path, value, error in [
        ("two signatures", (*env, "signatures"), sigs * 2, DSSEError),
        ("no signature", (*env, "signatures"), [], MalformedBundleError),
        ("other payloadType", (*env, "payloadType"), "application/json", SignatureMismatchError),
        ("empty payloadType", (*env, "payloadType"), "", MalformedBundleError),
        ("empty payload", (*env, "payload"), "", SignatureMismatchError),
        ("subject changed", (*env, "payload"),
         encode(json.dumps({**payload, "subject": []}).encode()), SignatureMismatchError),
        ("message signature too", ("messageSignature",), {"signature": sigs[0]["sig"]},
         MalformedBundleError),
        ("unknown envelope field", (*env, "extra"), 1, MalformedBundleError),
        ("signature as object", (*env, "signatures", 0), {"sig": {"a": 1}}, MalformedBundleError),
    ]:
        expect(DSSE, put(bundle, path, value), error, what)
    accept(DSSE, put(bundle, (*env, "signatures", 0, "keyid"), "anything"))  # advisory


# --- raw bytes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b" ", b"\xff\xfe", b"null", b"[]", b"0", b"{}", b"{", b"NaN", b'{"mediaType": NaN}',
     b" " * (1 << 20), b"{" * 10 + b"}" * 10, b'{"a":' * 50 + b"1" + b"}" * 50],
    ids=lambda d: repr(d[:12]),
)
def test_raw_bytes_that_are_not_a_bundle(data: bytes) -> None:
    expect(V03, data, MalformedBundleError, repr(data[:20]))


def test_encodings_of_a_valid_bundle() -> None:
    """JSON text is UTF-8, -16 or -32 (RFC 8259 readers may detect it): accepted or clean."""
    text = V03.bundle.read_text()
    for data in (text.encode("utf-16"), b"\xef\xbb\xbf" + text.encode(), text.encode("utf-32")):
        outcome = run(V03, data)
        check([(repr(data[:4]), outcome, True)])


# --- conformance _fail cases through the library -----------------------------------------------


def _fail_cases() -> list[str]:
    if not CONFORMANCE.is_dir():
        return ["happy-path-v0.3_fail"]  # missing vectors: the test fails in CI via require()
    return sorted(d.name for d in CONFORMANCE.iterdir() if d.name.endswith("_fail"))


_TIME = (NotEnoughVerifiedTimesError, TimestampError)
_VALIDITY = (CertificateChainError, CertificateExpiredAtSigningError)
#: what each conformance _fail case must raise (a family where two classes are defensible).
FAIL_CLASSES: dict[str, type[Exception] | tuple[type[Exception], ...]] = {
    "bundle-empty-certificate-chain_fail": MalformedBundleError,
    "bundle-from-wrong-instance_fail": CertificateChainError,
    "bundle-invalid-base64-signature_fail": MalformedBundleError,
    "bundle-malformed-json_fail": MalformedBundleError,
    "bundle-negative-log-index_fail": MalformedBundleError,
    "bundle-unknown-version_fail": MalformedBundleError,
    "bundle-with-root-cert_fail": CertificateChainError,
    "checkpoint-bad-keyhint_fail": CheckpointError,
    "checkpoint-wrong-roothash_fail": CheckpointError,
    "dsse-invalid-sig_fail": SignatureMismatchError,
    "dsse-mismatch-envelope_fail": LogEntryMismatchError,
    "dsse-mismatch-sig_fail": LogEntryMismatchError,
    "inclusion-proof-corrupted-hash_fail": InclusionProofError,
    "incorrect-public-key_fail": (InclusionProofError, LogEntryMismatchError),
    "integrated-time-in-future_fail": _VALIDITY,
    "intoto-expired-certificate_fail": CertificateChainError,
    "intoto-log-entry-mismatch_fail": LogEntryMismatchError,
    "intoto-missing-inclusion-proof_fail": MissingInclusionProofError,
    "intoto-set-outside-signing-cert-validity_fail": _VALIDITY,
    "intoto-tsa-timestamp-outside-cert-validity_fail": _VALIDITY,
    "invalid-checkpoint-signature_fail": CheckpointError,
    "invalid-ct-key_fail": EmbeddedSCTError,
    "invalid-inclusion-proof_fail": (MissingInclusionProofError, InclusionProofError,
                                     CheckpointError),
    "managed-key-no-key_fail": KeyMismatchError,
    "message-digest-mismatch_fail": ArtifactMismatchError,
    "rekor2-checkpoint-missing-log-signature_fail": CheckpointError,
    "rekor2-checkpoint-missing-origin_fail": CheckpointError,
    "rekor2-checkpoint-missing-root-hash_fail": CheckpointError,
    "rekor2-checkpoint-missing-size_fail": CheckpointError,
    "rekor2-checkpoint-no-matching-signature_fail": CheckpointError,
    "rekor2-dsse-invalid-sig_fail": SignatureMismatchError,
    "rekor2-dsse-mismatch-envelope_fail": LogEntryMismatchError,
    "rekor2-dsse-mismatch-sig_fail": LogEntryMismatchError,
    "rekor2-no-inclusion-proof_fail": MissingInclusionProofError,
    "rekor2-no-timestamp_fail": NotEnoughVerifiedTimesError,
    "rekor2-timestamp-outside-trust-root-tsa-validity_fail": _TIME,
    "rekor2-timestamp-outside-tsa-cert-validity_fail": _TIME,
    "rekor2-timestamp-payload-mismatch_fail": _TIME,
    "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail": _TIME,
    "rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail": _TIME,
    "rekor2-timestamp-with-incorrect-time_fail": _VALIDITY,
    "set-invalid-signature_fail": InclusionPromiseError,
    "signature-mismatch_fail": SignatureMismatchError,
    "wrong-hashedrekord-artifact_fail": LogEntryMismatchError,
    "wrong-hashedrekord-cert-and-sig_fail": LogEntryMismatchError,
    "wrong-hashedrekord-entry_fail": LogEntryMismatchError,
    "wrong-material_fail": ArtifactMismatchError,
}


@pytest.mark.parametrize("name", _fail_cases())
def test_conformance_fail_case_is_rejected_cleanly(name: str) -> None:
    """Each ``_fail`` case through the library: the specific error of what is wrong (the two
    cases whose trusted root or key.pub is unusable are refused before verification)."""
    d = CONFORMANCE / name
    identity = d / "identity"
    issuer = d / "issuer"
    root = d / "trusted_root.json"
    art = d / "artifact"
    key = d / "key.pub"
    case = Case(
        name,
        d / "bundle.sigstore.json",
        art if art.exists() else CONFORMANCE / "a.txt",
        root if root.exists() else PRODUCTION,
        identity.read_text().strip() if identity.exists() else V03.identity,
        issuer.read_text().strip() if issuer.exists() else V03.issuer,
        key if key.exists() else None,
    )
    require(case.bundle.exists(), f"conformance case {d}")
    try:  # the root and key are inputs too: refused cleanly (the CLI reports keyless errors)
        TrustedRoot.from_json(case.root.read_bytes())
        if case.key is not None:
            load_pem_public_key(case.key.read_bytes())
    except (Error, ValueError) as exc:
        assert name not in FAIL_CLASSES and str(exc)
        return
    outcome = run(case, case.bundle.read_bytes())
    check([(name, outcome, False)])
    assert name in FAIL_CLASSES, f"new _fail case {name}: {outcome.describe()}"
    assert isinstance(outcome.error, FAIL_CLASSES[name]), outcome.describe()
