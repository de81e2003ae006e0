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

from keyless.formats.der import (
    DERError,
    element,
    encode_oid,
    encode_tlv,
    generalized_time,
    integer,
)
from keyless.formats.jsonreader import ValidityPeriod
from keyless.formats.trustroot import CertificateAuthority, TrustedRoot
from keyless.formats.tsp import TokenBuilder, encode_query, parse_query
from keyless.formats.tsp import generalized_time as encode_generalized_time
from keyless.formats.tstoken import MalformedTimestamp, parse_signed_timestamp
from keyless.keys import InMemorySigner, generate_key
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


# --- structure that a one-bit flip cannot produce ------------------------------------------------


def _ca_signed(
    subject: str,
    public_key: object,
    issuer: x509.Certificate | None,
    issuer_key: object,
    *,
    ca: bool,
    eku: list[x509.ObjectIdentifier] | None = None,
    key_usage: dict[str, bool] | None = None,
    extra: x509.ExtensionType | None = None,
) -> x509.Certificate:
    """A certificate for the chain tests, built directly (the TSA helpers make only good ones)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    usage = {"digital_signature": not ca, "content_commitment": False, "key_encipherment": False,
             "data_encipherment": False, "key_agreement": False, "key_cert_sign": ca,
             "crl_sign": ca, "encipher_only": False, "decipher_only": False}
    usage.update(key_usage or {})
    builder = (
        x509.CertificateBuilder().subject_name(name)
        .issuer_name(issuer.subject if issuer else name).public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**usage), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(eku or [x509.ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        )
    if extra is not None:
        builder = builder.add_extension(extra, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]


def _token_for(chain: tuple[x509.Certificate, ...], signer: InMemorySigner) -> bytes:
    builder = TokenBuilder(signer, chain)
    query = parse_query(encode_query(hashlib.sha256(SIGNATURE).digest(), cert_req=True))
    now = int(dt.datetime.now(dt.UTC).timestamp())
    return builder.issue(query, serial=random_serial(), gen_time=encode_generalized_time(now))


def _chain(
    **leaf: object,
) -> tuple[tuple[x509.Certificate, ...], InMemorySigner]:
    """Root → intermediate → TSA leaf (P-256), with the leaf's options (see :func:`_ca_signed`)."""
    root_key, inter_key = generate_key("ecdsa-p256"), generate_key("ecdsa-p256")
    leaf_signer = InMemorySigner(generate_key("ecdsa-p256"))
    root_usage = leaf.pop("root_key_usage", None)
    root = _ca_signed("root", root_key.public_key(), None, root_key, ca=True,
                      key_usage=root_usage)  # type: ignore[arg-type]
    inter = _ca_signed("intermediate", inter_key.public_key(), root, root_key, ca=True)
    tsa = _ca_signed("tsa", leaf_signer.public_key(), inter, inter_key, ca=False,
                     **leaf)  # type: ignore[arg-type]
    return (tsa, inter, root), leaf_signer


def _both(chain: tuple[x509.Certificate, ...], token: bytes) -> tuple[object, object]:
    return _oracle(chain)(token, SIGNATURE), _ours(chain)(token, SIGNATURE)


def test_a_three_certificate_chain_token_verifies_like_rfc3161_client() -> None:
    chain, signer = _chain()
    token = _token_for(chain, signer)
    theirs, ours = _both(chain, token)
    assert theirs is not None and ours == theirs


def _swap(token: bytes, a: bytes, b: bytes) -> bytes:
    """Exchange two equally placed byte strings (the embedded certificates) in the token."""
    i, j = token.index(a), token.index(b)
    assert i + len(a) == j or j + len(b) == i
    first, second = (a, b) if i < j else (b, a)
    start = min(i, j)
    return token[:start] + second + first + token[start + len(first) + len(second):]


def _status_replaced(token: bytes, status: bytes) -> bytes:
    """The response with its PKIStatusInfo replaced (the token itself untouched)."""
    from asn1crypto import tsp

    response = tsp.TimeStampResp.load(token)
    return encode_tlv(0x30, status + response["time_stamp_token"].dump())


def _with_unsigned_junk(token: bytes) -> bytes:
    """The token with ``unsignedAttrs [1]`` holding an OCTET STRING instead of Attributes."""
    from asn1crypto import tsp

    response = tsp.TimeStampResp.load(token)
    signed = response["time_stamp_token"]["content"]
    info = signed["signer_infos"][0].dump()
    header = 2 if info[1] < 0x80 else 2 + (info[1] & 0x7F)
    new_info = encode_tlv(0x30, info[header:] + encode_tlv(0xA1, b"\x04\x01\x00"))
    fields = [signed[name].dump() for name in ("version", "digest_algorithms",
                                                "encap_content_info", "certificates")]
    signed_data = encode_tlv(0x30, b"".join(fields) + encode_tlv(0x31, new_info))
    content_info = encode_tlv(
        0x30, response["time_stamp_token"]["content_type"].dump() + encode_tlv(0xA0, signed_data)
    )
    return encode_tlv(0x30, response["status"].dump() + content_info)


def _by_key_identifier(token: bytes, leaf: x509.Certificate) -> bytes:
    from asn1crypto import cms, tsp

    response = tsp.TimeStampResp.load(token)
    info = response["time_stamp_token"]["content"]["signer_infos"][0]
    ski = x509.SubjectKeyIdentifier.from_public_key(leaf.public_key())  # type: ignore[arg-type]
    info["sid"] = cms.SignerIdentifier({"subject_key_identifier": ski.digest})
    return bytes(response.dump(force=True))


@pytest.mark.parametrize(
    "variant",
    ["certificates-out-of-der-order", "certificate-not-a-sequence", "signer-by-key-identifier",
     "junk-in-status", "huge-status", "malformed-unsigned-attributes"],
)
def test_unsigned_structure_is_as_strict_as_rfc3161_client(variant: str) -> None:
    """Parts outside the signature that rfc3161-client's strict DER schema refuses."""
    from cryptography.hazmat.primitives.serialization import Encoding

    chain, signer = _chain()
    token = _token_for(chain, signer)
    leaf, inter = (c.public_bytes(Encoding.DER) for c in chain[:2])
    altered = {
        "certificates-out-of-der-order": lambda: _swap(token, leaf, inter),
        "certificate-not-a-sequence": lambda: token.replace(leaf, b"\x04" + leaf[1:]),
        "signer-by-key-identifier": lambda: _by_key_identifier(token, chain[0]),
        "junk-in-status": lambda: _status_replaced(token, b"\x30\x06\x02\x01\x00\x04\x01\x00"),
        "huge-status": lambda: _status_replaced(
            token, encode_tlv(0x30, encode_tlv(0x02, b"\x01" + b"\x00" * 1900))
        ),
        "malformed-unsigned-attributes": lambda: _with_unsigned_junk(token),
    }[variant]()
    assert altered != token
    theirs, ours = _both(chain, altered)
    assert theirs is None, f"{variant}: rfc3161-client accepts it"
    assert ours is None, f"{variant}: keyless accepts what rfc3161-client refuses"


@pytest.mark.parametrize(
    ("leaf", "why"),
    [
        ({"eku": [x509.ExtendedKeyUsageOID.TIME_STAMPING, x509.ExtendedKeyUsageOID.CODE_SIGNING]},
         "EKU beyond timeStamping"),
        ({"key_usage": {"digital_signature": False, "key_encipherment": True}},
         "KeyUsage without a signing bit"),
        ({"extra": x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00")},
         "unknown critical extension"),
        ({"root_key_usage": {"key_cert_sign": False}}, "root KeyUsage without keyCertSign"),
    ],
    ids=["eku", "key-usage", "critical-extension", "root-key-usage"],
)
def test_tsa_chains_openssl_refuses_are_refused(leaf: dict[str, object], why: str) -> None:
    chain, signer = _chain(**leaf)
    theirs, ours = _both(chain, _token_for(chain, signer))
    assert theirs is None, f"{why}: rfc3161-client accepts it"
    assert ours is None, f"{why}: keyless accepts it"


def _without_certificates(token: bytes) -> bytes:
    """The same signed timestamp with its embedded certificates left out (unsigned)."""
    from asn1crypto import tsp

    response = tsp.TimeStampResp.load(token)
    signed = response["time_stamp_token"]["content"]
    fields = [signed[name].dump() for name in ("version", "digest_algorithms",
                                                "encap_content_info", "signer_infos")]
    content_info = encode_tlv(0x30, response["time_stamp_token"]["content_type"].dump()
                            + encode_tlv(0xA0, encode_tlv(0x30, b"".join(fields))))
    return encode_tlv(0x30, response["status"].dump() + content_info)


def test_one_timestamp_in_two_wrappings_is_not_two_verified_times(vectors: Path) -> None:
    """A token and a copy without its (unsigned) certificates both verify, but they are one
    timestamp: a threshold of two must not be met with them."""
    from keyless.verify.artifact import Artifact
    from keyless.verify.errors import TimestampError
    from keyless.verify.policy import Identity
    from keyless.verify.verifier import Verifier

    name = "staging-rekor-v2.txt"
    bundle = json.loads((vectors / "sigstore-python" / f"{name}.sigstore.json").read_text())
    stamps = bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    token = base64.b64decode(stamps[0]["signedTimestamp"])
    copy = _without_certificates(token)
    assert copy != token
    stamps.append({"signedTimestamp": base64.b64encode(copy).decode()})
    root = TrustedRoot.from_json((vectors / "public-good/staging/trusted_root.json").read_bytes())
    artifact = Artifact.from_bytes((vectors / "sigstore-python" / name).read_bytes())
    policy = Identity(issuer="https://github.com/login/oauth", identity="jku@goto.fi")
    for one in (token, copy):  # each verifies on its own
        single = json.loads(json.dumps(bundle))
        single["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"] = [
            {"signedTimestamp": base64.b64encode(one).decode()}
        ]
        Verifier(root).verify(json.dumps(single), artifact, policy=policy)
    with pytest.raises(TimestampError, match="same RFC 3161 timestamp twice"):
        Verifier(root, threshold=2).verify(json.dumps(bundle), artifact, policy=policy)
