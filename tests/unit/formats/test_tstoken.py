"""RFC 3161 token verification (keyless.formats.tstoken + keyless.verify.rfc3161) held to
rfc3161-client, the library sigstore-python 4.5.1 verifies timestamps with.

Differential: on real public-good tokens, on tokens from our own TSA (with and without embedded
certificates, ECDSA and RSA keys) and on every one-bit alteration of them, keyless accepts a
token exactly when rfc3161-client does, with the same genTime.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from rfc3161_client import VerificationError, VerifierBuilder, decode_timestamp_response

from keyless.formats.bundle import CertificateAuthority, TrustedRoot, ValidityPeriod
from keyless.formats.der import DERError, element, encode_oid, generalized_time, integer
from keyless.formats.tsp import TokenBuilder, encode_query, parse_query
from keyless.formats.tsp import generalized_time as encode_generalized_time
from keyless.formats.tstoken import MalformedTimestamp, parse_signed_timestamp
from keyless.server.keys import InMemorySigner, generate_key
from keyless.services.tsa.certs import create_root, issue_leaf
from keyless.services.tsa.service import random_serial
from keyless.trust.material import Authority, TrustMaterial
from keyless.verify.rfc3161 import TimestampMismatch, TrustedTimestampAuthority

SIGNATURE = b"the bundle's signature bytes"


@dataclass(frozen=True)
class Case:
    name: str
    token: bytes
    message: bytes
    chain: tuple[x509.Certificate, ...]


def _oracle(chain: tuple[x509.Certificate, ...]) -> Callable[[bytes, bytes], dt.datetime | None]:
    """rfc3161-client as sigstore-python 4.5.1 builds it (``_verify_signed_timestamp``)."""
    builder = VerifierBuilder().tsa_certificate(chain[0]).add_root_certificate(chain[-1])
    for intermediate in chain[1:-1]:
        builder = builder.add_intermediate_certificate(intermediate)
    verifier = builder.build()

    def verify(token: bytes, message: bytes) -> dt.datetime | None:
        try:
            response = decode_timestamp_response(token)
            verifier.verify_message(response, message)
        except (ValueError, VerificationError, x509.InvalidVersion):
            return None  # (rfc3161-client lets InvalidVersion escape: sigstore-python crashes)
        when: dt.datetime = response.tst_info.gen_time
        return when

    return verify


def _ours(chain: tuple[x509.Certificate, ...]) -> Callable[[bytes, bytes], dt.datetime | None]:
    from cryptography.hazmat.primitives.serialization import Encoding

    entry = CertificateAuthority(
        organization="test",
        common_name="test",
        uri="https://tsa.example",
        cert_chain=tuple(c.public_bytes(Encoding.DER) for c in chain),
        valid_for=ValidityPeriod(dt.datetime(2000, 1, 1, tzinfo=dt.UTC)),
    )
    tsa = TrustedTimestampAuthority(Authority(entry, chain))

    def verify(token: bytes, message: bytes) -> dt.datetime | None:
        try:
            return tsa.verify(parse_signed_timestamp(token), message)
        except (MalformedTimestamp, TimestampMismatch):
            return None

    return verify


def _vector_cases(vectors: Path) -> list[Case]:
    root = TrustedRoot.from_json((vectors / "public-good/staging/trusted_root.json").read_bytes())
    tsa = TrustMaterial(root).timestamp_authorities[0]
    cases = []
    for name in ("staging-rekor-v2.txt.sigstore.json", "a.dsse.staging-rekor-v2.txt.sigstore.json"):
        bundle = json.loads((vectors / "sigstore-python" / name).read_text())
        token = base64.b64decode(
            bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0][
                "signedTimestamp"
            ]
        )
        signed = bundle.get("messageSignature") or bundle["dsseEnvelope"]["signatures"][0]
        message = base64.b64decode(signed.get("signature") or signed["sig"])
        cases.append(Case(name, token, message, tsa.certificates))
    return cases


def _own_case(kind: str, *, cert_req: bool) -> Case:
    root_signer = InMemorySigner(generate_key(kind))
    leaf_signer = InMemorySigner(generate_key(kind))
    root = create_root(root_signer)
    leaf = issue_leaf(leaf_signer.public_key(), root, root_signer)
    builder = TokenBuilder(leaf_signer, (leaf, root))
    query = parse_query(encode_query(hashlib.sha256(SIGNATURE).digest(), cert_req=cert_req))
    now = int(dt.datetime.now(dt.UTC).timestamp())
    token = builder.issue(query, serial=random_serial(), gen_time=encode_generalized_time(now))
    return Case(f"keyless-{kind}-certreq={cert_req}", token, SIGNATURE, (leaf, root))


@pytest.fixture(scope="module")
def cases(vectors: Path) -> list[Case]:
    return [
        *_vector_cases(vectors),
        _own_case("ecdsa-p256", cert_req=True),
        _own_case("ecdsa-p384", cert_req=False),
        _own_case("rsa-3072", cert_req=True),
    ]


def test_real_and_own_tokens_verify_like_rfc3161_client(cases: list[Case]) -> None:
    for case in cases:
        expected = _oracle(case.chain)(case.token, case.message)
        assert expected is not None, case.name  # the harness can pass
        assert _ours(case.chain)(case.token, case.message) == expected, case.name


def test_other_message_or_other_tsa_is_refused(cases: list[Case]) -> None:
    for case in cases:
        assert _ours(case.chain)(case.token, case.message + b"x") is None
    first, other = cases[0], cases[2]
    assert _ours(other.chain)(first.token, first.message) is None
    assert _oracle(other.chain)(first.token, first.message) is None


def test_every_one_bit_alteration_agrees_with_rfc3161_client(cases: list[Case]) -> None:
    """Flip the low bit of every byte: both libraries accept or refuse each variant alike."""
    disagreements = []
    accepted = 0
    for case in cases:
        theirs, ours = _oracle(case.chain), _ours(case.chain)
        for i in range(len(case.token)):
            variant = bytearray(case.token)
            variant[i] ^= 0x01
            a, b = theirs(bytes(variant), case.message), ours(bytes(variant), case.message)
            accepted += a is not None
            if a != b:
                disagreements.append((case.name, i, a, b))
    assert not disagreements, disagreements[:10]
    # Unsigned fields (versions, embedded certificates' order…) may change harmlessly; most may not.
    assert accepted < sum(len(c.token) for c in cases) // 10


def test_gen_time_outside_the_chain_is_refused(cases: list[Case]) -> None:
    case = cases[2]
    leaf = case.chain[0]
    later = leaf.not_valid_after_utc + dt.timedelta(days=1)
    assert _ours(case.chain)(case.token, case.message) is not None
    # A TSA whose leaf expired before genTime: rebuild the chain with a short-lived leaf.
    root_signer = InMemorySigner(generate_key("ecdsa-p256"))
    leaf_signer = InMemorySigner(generate_key("ecdsa-p256"))
    root = create_root(root_signer)
    old_leaf = issue_leaf(
        leaf_signer.public_key(), root, root_signer, now=dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
    )
    builder = TokenBuilder(leaf_signer, (old_leaf, root))
    query = parse_query(encode_query(hashlib.sha256(SIGNATURE).digest(), cert_req=True))
    token = builder.issue(
        query, serial=random_serial(), gen_time=encode_generalized_time(int(later.timestamp()))
    )
    assert _oracle((old_leaf, root))(token, SIGNATURE) is None
    assert _ours((old_leaf, root))(token, SIGNATURE) is None


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "truncated"),
        (b"\x30\x80\x00\x00", "indefinite"),
        (b"\x30\x81\x05abcde", "non-minimal"),
        (b"\x30\x03\x02\x01", "runs past"),
        (b"\x1f\x01\x00", "multi-octet"),
        (b"\x30\x00trailing", "trailing"),
    ],
)
def test_malformed_responses_name_the_problem(data: bytes, problem: str) -> None:
    with pytest.raises(MalformedTimestamp, match=problem):
        parse_signed_timestamp(data)


def test_der_primitives() -> None:
    assert encode_oid("1.2.840.113549.1.9.16.1.4").hex() == "2a864886f70d0109100104"
    assert element(b"\x04\x82\x01\x00" + b"\x00" * 256, 0, 260) == (0x04, 4, 260)
    assert integer(b"\x00\x80", 0, 2, "x") == 128
    with pytest.raises(DERError, match="non-minimal"):
        integer(b"\x00\x01", 0, 2, "x")
    assert generalized_time(b"20250609115738.25Z", 0, 18, "t") == dt.datetime(
        2025, 6, 9, 11, 57, 38, 250000, tzinfo=dt.UTC
    )
    for bad in (b"20250609115738", b"20250609115738.50Z", b"20251309115738Z", b"2025060911573Z"):
        with pytest.raises(DERError):
            generalized_time(bad, 0, len(bad), "t")
