"""keyless.formats.tsp: queries, responses, and the fast token path against asn1crypto."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import os
from typing import Any

import pytest
from asn1crypto import cms, core, tsp, x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st
from rfc3161_client import VerifierBuilder, decode_timestamp_response
from tsa_fixtures import *  # noqa: F403  (the TSA test fixtures)

from keyless.errors import ConfigError, InvalidInput
from keyless.formats import tsp as ktsp
from keyless.formats.tsp import (
    DEFAULT_POLICY_OID,
    HASH_ALGORITHMS,
    TimestampQuery,
    TimestampRejected,
    TokenBuilder,
    der_length,
    encode_query,
    generalized_time,
    parse_query,
    query_from_json,
    rejection_response,
)
from keyless.keys import InMemorySigner, generate_key
from keyless.services.tsa import TsaCredentials
from keyless.services.tsa.certs import create_root, issue_leaf
from keyless.services.tsa.service import random_serial

GEN = 1_764_000_000  # 2025-11-24T16:00:00Z


def _query(hash_name: str = "sha256", **kw: Any) -> TimestampQuery:
    digest = hashlib.new(hash_name, b"signature bytes").digest()
    return parse_query(encode_query(digest, hash_name, **kw))


# ---- DER lengths and times --------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 127, 128, 255, 256, 65535, 65536, 2**24 + 5])
def test_der_length_matches_asn1crypto(n: int) -> None:
    encoded = core.OctetString(b"\x00" * n).dump()
    assert encoded[1 : 1 + len(der_length(n))] == der_length(n)


@given(st.integers(min_value=-(2**300), max_value=2**300))
@settings(max_examples=300)
def test_der_integer_matches_asn1crypto(value: int) -> None:
    assert ktsp.der_integer(value) == core.Integer(value).dump()


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, -1, -128, -129, 2**63, 2**256 - 1])
def test_der_integer_edges_match_asn1crypto(value: int) -> None:
    assert ktsp.der_integer(value) == core.Integer(value).dump()


def test_generalized_time_is_whole_seconds_utc() -> None:
    der = generalized_time(GEN)
    assert der == b"\x18\x0f20251124160000Z"
    parsed = core.GeneralizedTime.load(der).native
    assert parsed == dt.datetime(2025, 11, 24, 16, 0, tzinfo=dt.UTC)


# ---- parsing DER queries ----------------------------------------------------------------


@pytest.mark.parametrize("hash_name", sorted(HASH_ALGORITHMS))
def test_parse_query_round_trip(hash_name: str) -> None:
    digest = hashlib.new(hash_name, b"x").digest()
    q = parse_query(
        encode_query(digest, hash_name, nonce=2**63 + 5, cert_req=True, policy="1.2.3.4")
    )
    assert q.hash_algorithm.name == hash_name
    assert q.digest == digest
    assert q.nonce == 2**63 + 5
    assert q.cert_req is True
    assert q.policy == "1.2.3.4"


def test_parse_query_defaults() -> None:
    q = parse_query(encode_query(b"\x01" * 32))
    assert (q.nonce, q.cert_req, q.policy, q.imprint_params_null) == (None, False, None, True)


def _raw_req(alg_der: bytes, digest: bytes = b"\x02" * 32) -> bytes:
    """A TimeStampReq around a hand-made AlgorithmIdentifier (asn1crypto forces NULL params)."""
    imprint = alg_der + core.OctetString(digest).dump()
    body = core.Integer(1).dump() + b"\x30" + der_length(len(imprint)) + imprint
    return b"\x30" + der_length(len(body)) + body


SHA256_OID_DER = core.ObjectIdentifier("2.16.840.1.101.3.4.2.1").dump()


def test_parse_query_remembers_absent_parameters(credentials: TsaCredentials) -> None:
    q = parse_query(_raw_req(b"\x30" + der_length(len(SHA256_OID_DER)) + SHA256_OID_DER))
    assert q.imprint_params_null is False
    builder = TokenBuilder(credentials.signer, credentials.chain)
    resp = tsp.TimeStampResp.load(
        builder.issue(q, serial=random_serial(), gen_time=generalized_time(GEN))
    )
    tst = resp["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    # RFC 3161 §2.4.2: the token's messageImprint equals the request's, parameters included.
    assert tst["message_imprint"]["hash_algorithm"].dump() == b"\x30\x0b" + SHA256_OID_DER


def _req(**overrides: Any) -> bytes:
    fields: dict[str, Any] = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": "sha256"},
            "hashed_message": b"\x03" * 32,
        },
    }
    fields.update(overrides)
    return bytes(tsp.TimeStampReq(fields).dump())


def _nested(depth: int) -> bytes:
    """``depth`` SEQUENCEs inside each other (a recursion bomb for naive parsers)."""
    der = b"\x05\x00"
    for _ in range(depth):
        der = b"\x30" + der_length(len(der)) + der
    return der


HOSTILE_DER = [
    ("empty", b"", ktsp.BAD_DATA_FORMAT),
    ("garbage", b"not asn.1 at all", ktsp.BAD_DATA_FORMAT),
    ("json body", b'{"artifactHash":"AA==","hashAlgorithm":"sha256"}', ktsp.BAD_DATA_FORMAT),
    ("truncated", _req()[:-3], ktsp.BAD_DATA_FORMAT),
    ("trailing data", _req() + b"\x00", ktsp.BAD_DATA_FORMAT),
    ("wrong outer type", core.OctetString(b"x").dump(), ktsp.BAD_DATA_FORMAT),
    ("version 2", _req(version=2), ktsp.BAD_DATA_FORMAT),
    ("deeply nested", _nested(1000), ktsp.BAD_DATA_FORMAT),
    (
        "sha1",
        _req(
            message_imprint={
                "hash_algorithm": {"algorithm": "sha1"},
                "hashed_message": b"\x00" * 20,
            }
        ),
        ktsp.BAD_ALG,
    ),
    (
        "md5",
        _req(message_imprint={"hash_algorithm": {"algorithm": "md5"}, "hashed_message": b"0" * 16}),
        ktsp.BAD_ALG,
    ),
    (
        "unknown oid",
        _req(
            message_imprint={
                "hash_algorithm": {"algorithm": "1.2.3.4.5"},
                "hashed_message": b"\x00" * 32,
            }
        ),
        ktsp.BAD_ALG,
    ),
    (
        "short digest",
        _req(
            message_imprint={
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": b"\x00" * 31,
            }
        ),
        ktsp.BAD_DATA_FORMAT,
    ),
    (
        "sha512 oid with sha256 digest",
        _req(
            message_imprint={
                "hash_algorithm": {"algorithm": "sha512"},
                "hashed_message": b"\x00" * 32,
            }
        ),
        ktsp.BAD_DATA_FORMAT,
    ),
    (
        "odd parameters",
        _raw_req(b"\x30" + der_length(len(SHA256_OID_DER) + 3) + SHA256_OID_DER + b"\x02\x01\x05"),
        ktsp.BAD_DATA_FORMAT,  # RFC 5754 §2: SHA-2 parameters are absent or NULL
    ),
    ("negative nonce", _req(nonce=-1), ktsp.BAD_REQUEST),
    ("huge nonce", _req(nonce=2**300), ktsp.BAD_REQUEST),
    (
        "extension",
        _req(extensions=[{"extn_id": "1.2.3.4", "critical": False, "extn_value": b"\x05\x00"}]),
        ktsp.UNACCEPTED_EXTENSION,
    ),
]


@pytest.mark.parametrize(
    ("body", "failure"), [h[1:] for h in HOSTILE_DER], ids=[h[0] for h in HOSTILE_DER]
)
def test_hostile_der_queries_are_rejected(body: bytes, failure: str) -> None:
    with pytest.raises(TimestampRejected) as info:
        parse_query(body)
    assert info.value.failure == failure
    assert isinstance(info.value, InvalidInput)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_escape_as_other_errors(data: bytes) -> None:
    with contextlib.suppress(TimestampRejected):
        parse_query(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_mutated_queries_never_escape_as_other_errors(position: int, value: int) -> None:
    good = bytearray(_req(nonce=12345, cert_req=True, req_policy="1.2.3"))
    good[position % len(good)] = value
    with contextlib.suppress(TimestampRejected):
        parse_query(bytes(good))


# ---- JSON queries -----------------------------------------------------------------------


def test_json_query_as_sigstore_js_sends_it() -> None:
    digest = hashlib.sha256(b"sig").digest()
    q = query_from_json(
        {"artifactHash": base64.b64encode(digest).decode(), "hashAlgorithm": "sha256"}
    )
    assert (q.digest, q.hash_algorithm.name, q.cert_req, q.nonce, q.policy) == (
        digest,
        "sha256",
        False,
        None,
        None,
    )


def test_json_query_with_all_fields() -> None:
    digest = hashlib.sha384(b"sig").digest()
    q = query_from_json(
        {
            "artifactHash": base64.b64encode(digest).decode(),
            "hashAlgorithm": "SHA384",
            "certificates": True,
            "nonce": 42,
            "tsaPolicyOID": "1.3.6.1.4.1.57264.2",
        }
    )
    assert (q.hash_algorithm.name, q.cert_req, q.nonce, q.policy) == (
        "sha384",
        True,
        42,
        "1.3.6.1.4.1.57264.2",
    )


B64_32 = base64.b64encode(b"\x00" * 32).decode()
HOSTILE_JSON: list[tuple[str, dict[str, Any]]] = [
    ("no hash", {"hashAlgorithm": "sha256"}),
    ("hash not string", {"artifactHash": 5, "hashAlgorithm": "sha256"}),
    ("bad base64", {"artifactHash": "***", "hashAlgorithm": "sha256"}),
    ("no algorithm", {"artifactHash": B64_32}),
    ("sha1", {"artifactHash": base64.b64encode(b"\x00" * 20).decode(), "hashAlgorithm": "sha1"}),
    ("wrong length", {"artifactHash": B64_32, "hashAlgorithm": "sha512"}),
    (
        "certificates not bool",
        {"artifactHash": B64_32, "hashAlgorithm": "sha256", "certificates": "yes"},
    ),
    ("nonce bool", {"artifactHash": B64_32, "hashAlgorithm": "sha256", "nonce": True}),
    ("nonce string", {"artifactHash": B64_32, "hashAlgorithm": "sha256", "nonce": "1"}),
    ("nonce negative", {"artifactHash": B64_32, "hashAlgorithm": "sha256", "nonce": -5}),
    ("policy garbage", {"artifactHash": B64_32, "hashAlgorithm": "sha256", "tsaPolicyOID": "abc"}),
    ("policy number", {"artifactHash": B64_32, "hashAlgorithm": "sha256", "tsaPolicyOID": 1}),
]


@pytest.mark.parametrize("obj", [h[1] for h in HOSTILE_JSON], ids=[h[0] for h in HOSTILE_JSON])
def test_hostile_json_queries_are_invalid_input(obj: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        query_from_json(obj)


# ---- responses --------------------------------------------------------------------------


def test_rejection_response_carries_status_and_failure_bit() -> None:
    outer = core.Sequence.load(rejection_response(ktsp.BAD_ALG, "sha1 is weak"))
    assert len(outer) == 1  # no timeStampToken on failure (RFC 3161 §2.4.2)
    status = tsp.PKIStatusInfo.load(outer[0].dump())
    assert status["status"].native == "rejection"
    assert status["fail_info"].native == {"bad_alg"}
    assert status["status_string"].native == ["sha1 is weak"]


def _reference_response(
    builder: TokenBuilder,
    leaf: x509.Certificate,
    query: TimestampQuery,
    *,
    serial: bytes,
    signature: bytes,
    policy: str,
    digest_name: str,
    signature_algorithm: str,
) -> bytes:
    """The same response built entirely with asn1crypto structures (RFC 3161 §2.4.2)."""
    alg: dict[str, Any] = {"algorithm": query.hash_algorithm.name}
    if query.imprint_params_null:
        alg["parameters"] = core.Null()
    tst_fields: dict[str, Any] = {
        "version": "v1",
        "policy": policy,
        "message_imprint": {"hash_algorithm": alg, "hashed_message": query.digest},
        "serial_number": core.Integer.load(serial).native,
        "gen_time": dt.datetime.fromtimestamp(GEN, dt.UTC),
        "accuracy": {"seconds": 1},
        "tsa": x509.GeneralName(name="directory_name", value=leaf.subject),
    }
    if query.nonce is not None:
        tst_fields["nonce"] = query.nonce
    tst = tsp.TSTInfo(tst_fields)
    ess = tsp.SigningCertificateV2(
        {
            "certs": [
                {
                    "cert_hash": hashlib.sha256(leaf.dump()).digest(),
                    "issuer_serial": {
                        "issuer": [x509.GeneralName(name="directory_name", value=leaf.issuer)],
                        "serial_number": leaf.serial_number,
                    },
                }
            ]
        }
    )
    attrs = [
        cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
        cms.CMSAttribute(
            {"type": "message_digest", "values": [hashlib.new(digest_name, tst.dump()).digest()]}
        ),
        cms.CMSAttribute({"type": "signing_certificate_v2", "values": [ess]}),
    ]
    attrs.sort(key=lambda a: a.dump())  # DER SET OF order, X.690 §11.6
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": leaf.issuer, "serial_number": leaf.serial_number},
            ),
            "digest_algorithm": {"algorithm": digest_name},
            "signed_attrs": attrs,
            "signature_algorithm": {"algorithm": signature_algorithm},
            "signature": signature,
        }
    )
    signed_data: dict[str, Any] = {
        "version": "v3",
        "digest_algorithms": [{"algorithm": digest_name}],
        "encap_content_info": {"content_type": "tst_info", "content": tst},
        "signer_infos": [signer_info],
    }
    if query.cert_req:
        signed_data["certificates"] = [leaf]
    return bytes(
        tsp.TimeStampResp(
            {
                "status": {"status": "granted"},
                "time_stamp_token": {"content_type": "signed_data", "content": signed_data},
            }
        ).dump()
    )


CASES = [
    ("sha256", {"nonce": 7, "cert_req": True}),
    ("sha256", {}),
    ("sha384", {"nonce": 2**64 - 1}),
    ("sha512", {"cert_req": True, "policy": DEFAULT_POLICY_OID}),
    ("sha512", {"cert_req": True, "policy": "1.2.3.4.5"}),
]


@pytest.mark.parametrize(("hash_name", "kw"), CASES)
def test_fast_path_equals_asn1crypto_reference(
    credentials: TsaCredentials, hash_name: str, kw: dict[str, Any]
) -> None:
    builder = TokenBuilder(
        credentials.signer, credentials.chain, policies=(DEFAULT_POLICY_OID, "1.2.3.4.5")
    )
    query = _query(hash_name, **kw)
    serial = random_serial()
    fast = builder.issue(query, serial=serial, gen_time=generalized_time(GEN))
    parsed = tsp.TimeStampResp.load(fast)
    signer_info = parsed["time_stamp_token"]["content"]["signer_infos"][0]
    leaf = x509.Certificate.load(credentials.chain_der[0])
    reference = _reference_response(
        builder,
        leaf,
        query,
        serial=serial,
        signature=signer_info["signature"].native,
        policy=kw.get("policy", DEFAULT_POLICY_OID),
        digest_name="sha256",
        signature_algorithm="sha256_ecdsa",
    )
    assert fast == reference


def test_token_fields_and_signature(credentials: TsaCredentials) -> None:
    builder = TokenBuilder(credentials.signer, credentials.chain)
    query = _query(nonce=99, cert_req=True)
    serial = random_serial()
    resp = tsp.TimeStampResp.load(
        builder.issue(query, serial=serial, gen_time=generalized_time(GEN))
    )
    signed = resp["time_stamp_token"]["content"]
    tst = signed["encap_content_info"]["content"].parsed
    assert tst["version"].native == "v1"
    assert tst["policy"].dotted == DEFAULT_POLICY_OID
    assert tst["message_imprint"]["hashed_message"].native == query.digest
    assert tst["nonce"].native == 99
    assert tst["accuracy"]["seconds"].native == 1
    assert tst["ordering"].native is False
    assert tst["serial_number"].native == core.Integer.load(serial).native > 0
    # Only the leaf is embedded with certReq (never the root the verifier must already hold).
    assert [c.chosen.dump() for c in signed["certificates"]] == [credentials.chain_der[0]]
    si = signed["signer_infos"][0]
    attrs = {a["type"].native: a["values"][0] for a in si["signed_attrs"]}
    assert attrs["message_digest"].native == hashlib.sha256(tst.dump()).digest()
    ess = attrs["signing_certificate_v2"]["certs"][0]
    assert ess["cert_hash"].native == hashlib.sha256(credentials.chain_der[0]).digest()
    signed_attrs = si["signed_attrs"].dump()
    public = credentials.chain[0].public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(si["signature"].native, b"\x31" + signed_attrs[1:], ec.ECDSA(hashes.SHA256()))


def test_no_certificates_without_cert_req(credentials: TsaCredentials) -> None:
    builder = TokenBuilder(credentials.signer, credentials.chain)
    resp = tsp.TimeStampResp.load(
        builder.issue(
            _query(cert_req=False), serial=random_serial(), gen_time=generalized_time(GEN)
        )
    )
    assert resp["time_stamp_token"]["content"]["certificates"].native is None


def test_unaccepted_policy(credentials: TsaCredentials) -> None:
    builder = TokenBuilder(credentials.signer, credentials.chain)
    with pytest.raises(TimestampRejected) as info:
        builder.issue(
            _query(policy="1.2.3"), serial=random_serial(), gen_time=generalized_time(GEN)
        )
    assert info.value.failure == ktsp.UNACCEPTED_POLICY


def test_builder_refuses_a_signer_that_does_not_match_the_leaf(credentials: TsaCredentials) -> None:
    with pytest.raises(ConfigError):
        TokenBuilder(InMemorySigner(generate_key()), credentials.chain)


@pytest.mark.parametrize(("kind", "digest"), [("ecdsa-p384", "sha384"), ("rsa-3072", "sha256")])
def test_other_key_types_verify_with_rfc3161_client(kind: str, digest: str) -> None:
    root_signer = InMemorySigner(generate_key("ecdsa-p256"))
    root = create_root(root_signer)
    leaf_signer = InMemorySigner(generate_key(kind))
    leaf = issue_leaf(leaf_signer.public_key(), root, root_signer)
    builder = TokenBuilder(leaf_signer, [leaf, root])
    message = os.urandom(70)
    query = parse_query(encode_query(hashlib.sha256(message).digest(), nonce=5, cert_req=True))
    now = int(dt.datetime.now(dt.UTC).timestamp())
    resp = decode_timestamp_response(
        builder.issue(query, serial=random_serial(), gen_time=generalized_time(now))
    )
    verifier = VerifierBuilder().tsa_certificate(leaf).add_root_certificate(root).build()
    assert verifier.verify_message(resp, message)
    assert builder.digest_name == digest
    assert leaf.public_bytes(serialization.Encoding.DER) == builder.leaf_der


# ---- the fast query parser agrees with asn1crypto -----------------------------------------


def _shaped_query(hash_name: str, nonce: int | None, cert_req: bool, null: bool) -> bytes:
    algorithm = HASH_ALGORITHMS[hash_name]
    oid = core.ObjectIdentifier(algorithm.oid).dump()
    alg = oid + (b"\x05\x00" if null else b"")
    digest = hashlib.new(hash_name, b"d").digest()
    imprint = b"\x30" + der_length(len(alg)) + alg + core.OctetString(digest).dump()
    body = core.Integer(1).dump() + b"\x30" + der_length(len(imprint)) + imprint
    if nonce is not None:
        body += core.Integer(nonce).dump()
    if cert_req:
        body += b"\x01\x01\xff"
    return b"\x30" + der_length(len(body)) + body


query_shapes = st.builds(
    _shaped_query,
    st.sampled_from(sorted(HASH_ALGORITHMS)),
    st.none() | st.integers(min_value=0, max_value=2**256 - 1),
    st.booleans(),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(query_shapes)
def test_fast_parser_takes_the_common_shapes_and_agrees(der: bytes) -> None:
    fast = ktsp._parse_query_fast(der)
    assert fast is not None  # the fast path is really used for what clients send
    assert fast == ktsp.parse_query_asn1(der)


@settings(max_examples=1000, deadline=None)
@given(
    query_shapes, st.integers(min_value=0), st.integers(min_value=0, max_value=255), st.booleans()
)
def test_fast_parser_never_accepts_what_asn1crypto_refuses(
    der: bytes, position: int, value: int, truncate: bool
) -> None:
    mutated = bytearray(der)
    if truncate:
        del mutated[position % len(mutated) :]
    else:
        mutated[position % len(mutated)] = value
    fast = ktsp._parse_query_fast(bytes(mutated))
    if fast is not None:
        assert fast == ktsp.parse_query_asn1(bytes(mutated))


def test_openssl_and_rfc3161_client_shapes_take_the_fast_path() -> None:
    from rfc3161_client import TimestampRequestBuilder

    rfc = TimestampRequestBuilder().data(b"sig").nonce(nonce=True).build().as_bytes()
    assert ktsp._parse_query_fast(rfc) == ktsp.parse_query_asn1(rfc)
    assert ktsp._parse_query_fast(encode_query(b"\x00" * 32, policy="1.2.3")) is None


def test_ed25519_tsa_keys_are_refused() -> None:
    # openssl ts / rfc3161-client (OpenSSL PKCS#7) cannot verify Ed25519 signer infos.
    root_signer = InMemorySigner(generate_key("ecdsa-p256"))
    root = create_root(root_signer)
    leaf_signer = InMemorySigner(generate_key("ed25519"))
    leaf = issue_leaf(leaf_signer.public_key(), root, root_signer)
    with pytest.raises(ConfigError, match="ECDSA"):
        TokenBuilder(leaf_signer, [leaf, root])
