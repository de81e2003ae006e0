"""One targeted, deterministic variant per bug the sweeps found (all fixed), and the neighbouring
variants that already behaved, so that none of them can come back unnoticed.
"""

from __future__ import annotations

import json

import pytest
from hostile_util import (
    BY_NAME,
    CHECKPOINT,
    PROOF,
    TLOG,
    Case,
    Json,
    Path_,
    cert_path,
    check,
    decode,
    dumps,
    encode,
    flip,
    get,
    put,
    run,
)

from keyless.verify.errors import MalformedBundleError

V03 = BY_NAME["happy-path-v0.3"]
REKOR2 = BY_NAME["rekor2-happy-path"]
DSSE = BY_NAME["happy-path-intoto-in-dsse-v3"]
TOKEN: Path_ = (
    "verificationMaterial", "timestampVerificationData", "rfc3161Timestamps", 0, "signedTimestamp"
)
P256_OID = bytes.fromhex("06082a8648ce3d030107")


def _strict(case: Case, bundle: Json | bytes, what: str) -> None:
    """The variant must be rejected cleanly; known bugs are *not* tolerated here."""
    check([(what, run(case, bundle), False)])


# --- cert key ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "offset"),
    [
        pytest.param("happy-path-v0.3", 16, id="v0.3-bad-point"),
        pytest.param("happy-path-v0.3", 2, id="v0.3-unknown-curve"),
        pytest.param("happy-path-v0.1", 16, id="v0.1-bad-point"),
        pytest.param("rekor-v2+tsa", 40, id="rekor2-bad-point"),
    ],
)
def test_leaf_with_an_undecodable_public_key(name: str, offset: int) -> None:
    """A bit flip in the leaf's SPKI (curve OID or EC point): the DER still parses."""
    case = BY_NAME[name]
    bundle = case.load()
    path = cert_path(bundle)
    assert path is not None
    raw = decode(get(bundle, path))
    at = raw.find(P256_OID)
    assert at > 0
    _strict(case, put(bundle, path, encode(flip(raw, at + offset, 0))), "leaf SPKI flip")


# --- integrated time -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(253402300800, id="year-10000"),
        pytest.param(2**62, id="2^62"),
        pytest.param(str(2**63 - 1), id="int64-max"),
        pytest.param(253402300799, id="year-9999"),
        pytest.param(0, id="zero"),
        pytest.param(str(2**63), id="int64-max+1"),
        pytest.param(-1, id="negative"),
    ],
)
def test_integrated_time_out_of_datetime_range(value: Json) -> None:
    bundle = V03.load()
    _strict(V03, put(bundle, (*TLOG, "integratedTime"), value), f"integratedTime {value}")


# --- deep json -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("depth", "where"),
    [
        pytest.param(100_000, "top", id="top-level-100k"),
        pytest.param(100_000, "field", id="in-a-field-100k"),
        pytest.param(500, "field", id="in-a-field-500"),
    ],
)
def test_deeply_nested_json(depth: int, where: str) -> None:
    nested = b"[" * depth + b"]" * depth
    if where == "top":
        data = nested
    else:
        text = dumps(V03.load())
        data = text[:-1] + b', "extra": ' + nested + b"}"
    _strict(V03, data, f"{depth}-deep array ({where})")


# --- surrogate -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "path", "value"),
    [
        pytest.param("happy-path-v0.3", CHECKPOINT, "\ud800", id="checkpoint"),
        pytest.param("happy-path-intoto-in-dsse-v3", ("dsseEnvelope", "payloadType"), "\udfff",
                     id="dsse-payloadType"),
        pytest.param("happy-path-v0.3", ("mediaType",), "\ud800", id="mediaType"),
        pytest.param("happy-path-v0.3", (*TLOG, "kindVersion", "kind"), "\ud800", id="kind"),
        pytest.param("happy-path-v0.3", ("messageSignature", "signature"), "\ud800",
                     id="base64-field"),
    ],
)
def test_lone_surrogate_in_a_string(name: str, path: Path_, value: str) -> None:
    case = BY_NAME[name]
    bundle = case.load()
    _strict(case, put(bundle, path, value), f"{path[-1]} = {value!a}")


# --- checkpoint digits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [
        pytest.param("9" * 5000, id="5000-digits"),
        pytest.param("9" * 4000, id="4000-digits"),
        pytest.param(str(2**64), id="2^64"),
        pytest.param(str(2**64 - 1), id="2^64-1"),
    ],
)
def test_checkpoint_tree_size_with_many_digits(size: str) -> None:
    bundle = V03.load()
    text, sigs = get(bundle, CHECKPOINT).split("\n\n", 1)
    lines = text.split("\n")
    envelope = "\n".join([lines[0], size, *lines[2:]]) + "\n\n" + sigs
    _strict(V03, put(bundle, CHECKPOINT, envelope), f"checkpoint size of {len(size)} digits")


# --- long message --------------------------------------------------------------------------

MB = "A" * (1 << 20)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param(("mediaType",), MB, id="mediaType"),
        pytest.param((*TLOG, "kindVersion", "kind"), MB, id="kind"),
        pytest.param((*TLOG, "kindVersion", "version"), MB, id="version"),
        pytest.param(("messageSignature", "messageDigest", "algorithm"), MB, id="algorithm"),
        pytest.param((*PROOF, "rootHash"), MB, id="rootHash"),
        pytest.param((*TLOG, "logIndex"), MB, id="logIndex"),
        pytest.param(CHECKPOINT, MB, id="checkpoint"),
        pytest.param(("messageSignature", "signature"), MB, id="signature"),
        pytest.param((*TLOG, "canonicalizedBody"), MB, id="canonicalizedBody"),
        pytest.param((*PROOF, "hashes", 0), MB, id="proof-hash"),
        pytest.param(("verificationMaterial", "certificate", "rawBytes"), MB, id="certificate"),
        pytest.param(("unknownField",), MB, id="unknown-field-value"),
    ],
)
def test_one_megabyte_value_gives_a_short_message(path: Path_, value: str) -> None:
    _strict(V03, put(V03.load(), path, value), f"1 MB {path[-1]}")


def test_one_megabyte_key_gives_a_short_message() -> None:
    bundle = V03.load()
    bundle[MB] = 1
    _strict(V03, bundle, "1 MB unknown key")


# --- x509 name type ------------------------------------------------------------------------

ORG_OID = bytes.fromhex("060355040a")  # id-at-organizationName, then the string's tag


def _retag_name(der: bytes) -> bytes:
    """The certificate with its first organizationName re-tagged PrintableString → BIT STRING
    (0x13 → 0x03: one bit); the DER still parses, the Name attribute is invalid."""
    at = der.find(ORG_OID) + len(ORG_OID)
    assert der[at] in (0x13, 0x0C), hex(der[at])
    return flip(der, at, 4)


@pytest.mark.parametrize(
    "name", [pytest.param("happy-path-v0.1"), "happy-path-v0.2"]
)
def test_bundle_chain_certificate_with_a_bit_string_name(name: str) -> None:
    """v0.1/v0.2 chains may carry intermediates: one with an invalid Name attribute type."""
    case = BY_NAME[name]
    bundle = case.load()
    chain = ("verificationMaterial", "x509CertificateChain", "certificates")
    intermediate = decode(_ca_certificate(case, 1, 0))
    extra = {"rawBytes": encode(_retag_name(intermediate))}
    if name == "happy-path-v0.2":  # control: the same intermediate, intact, is accepted
        extra = {"rawBytes": encode(intermediate)}
        assert run(case, put(bundle, chain, [*get(bundle, chain), extra])).status == "ok"
        return
    _strict(case, put(bundle, chain, [*get(bundle, chain), extra]), "retagged intermediate")


def _ca_certificate(case: Case, authority: int, index: int) -> str:
    root = json.loads(case.root.read_bytes())
    value: str = root["certificateAuthorities"][authority]["certChain"]["certificates"][index][
        "rawBytes"
    ]
    return value


@pytest.mark.parametrize(
    ("name", "occurrence"),
    [
        # the 2nd organizationName of this token is its embedded certificate's issuer
        pytest.param("rekor2-happy-path", 1, id="rekor2-cert"),
        # the others are signed (TSTInfo) or the SignerInfo's issuer: caught cleanly
        pytest.param("rekor2-happy-path", 0, id="rekor2-tstinfo"),
        pytest.param("rekor2-happy-path", 3, id="rekor2-signer-issuer"),
        pytest.param("dsse-rekor-v2", 1, id="dsse-rekor-v2-no-embedded-cert"),
    ],
)
def test_token_with_an_embedded_certificate_with_a_bit_string_name(
    name: str, occurrence: int
) -> None:
    """The TSA token's embedded certificate re-tagged (the token's own signed parts intact)."""
    case = BY_NAME[name]
    bundle = case.load()
    raw = decode(get(bundle, TOKEN))
    at = -1
    for _ in range(occurrence + 1):
        at = raw.find(ORG_OID, at + 1)
    assert at > 0
    at += len(ORG_OID)
    _strict(case, put(bundle, TOKEN, encode(flip(raw, at, 4))), "retagged name in token")


# --- RFC 3161 token: signed vs unsigned parts --------------------------------------------------


def _token_with_flipped_oid(case: Case, oid_hex: str, occurrence: int) -> Json:
    bundle = case.load()
    raw = decode(get(bundle, TOKEN))
    oid = bytes.fromhex(oid_hex)
    at = -1
    for _ in range(occurrence + 1):
        at = raw.find(oid, at + 1)
    assert at >= 0, f"OID {oid_hex} occurrence {occurrence} not in the token"
    return put(bundle, TOKEN, encode(flip(raw, at + 5, 1)))


@pytest.mark.parametrize(
    ("name", "occurrence"),
    [
        pytest.param("rekor2-happy-path", 0, id="rekor2-digestAlgorithms"),
        pytest.param("dsse-rekor-v2", 0, id="dsse-digestAlgorithms"),
        pytest.param("rekor2-happy-path", 1, id="rekor2-messageImprint"),
        pytest.param("rekor2-happy-path", 2, id="rekor2-signerInfo-digestAlgorithm"),
    ],
)
def test_token_with_an_altered_sha256_identifier(name: str, occurrence: int) -> None:
    case = BY_NAME[name]
    sha256 = "0609608648016503040201"
    _strict(case, _token_with_flipped_oid(case, sha256, occurrence), f"sha256 OID #{occurrence}")


# --- messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"[]", b"null", b"1", b'"bundle"'])
def test_a_bundle_that_is_not_an_object_is_named_in_the_message(data: bytes) -> None:
    outcome = run(V03, data)
    assert isinstance(outcome.error, MalformedBundleError), outcome.describe()
    assert "  " not in str(outcome.error), f"a field name is missing: {outcome.error}"


def test_cases_used_here_exist() -> None:
    """Guards the targeted variants above against a vector set without these bundles."""
    for case in (V03, REKOR2, DSSE):
        assert run(case, case.load()).status == "ok"


# --- dsse signature fields -----------------------------------------------------------------


def test_unknown_field_in_a_dsse_signature_object() -> None:
    bundle = put(DSSE.load(), ("dsseEnvelope", "signatures", 0, "unknownField"), 1)
    _strict(DSSE, bundle, "dsseEnvelope.signatures[0].unknownField")


# --- raw echo ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param((*TLOG, "kindVersion", "kind"), "hashed\nrekord", id="kind-newline"),
        pytest.param((*TLOG, "kindVersion", "kind"), "\x1b[2J\x1b[32mverified", id="kind-escape"),
        pytest.param((*TLOG, "kindVersion", "version"), "0.0.1\r", id="version-cr"),
        pytest.param(("messageSignature", "messageDigest", "algorithm"), "SHA2_256\n",
                     id="algorithm-newline"),
        pytest.param(("mediaType",), "\x1b[2J", id="mediaType-escape"),
        pytest.param((*TLOG, "logIndex"), "\x1b[2J", id="logIndex-escape"),
        pytest.param(("unknown\x1b[2J",), 1, id="unknown-key-escape"),
    ],
)
def test_control_characters_are_not_echoed(path: Path_, value: Json) -> None:
    _strict(V03, put(V03.load(), path, value), f"{path[-1]!a} = {value!a}")
