"""Hostile signing certificates that a CA of our own issues validly (hostile_log.OwnCA), so the
chain holds and the SCT, profile and identity checks (protocols.md §9 steps 3-4) see them."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from hostile_log import (
    ARTIFACT,
    IDENTITY,
    INTEGRATED_TIME,
    ISSUER,
    ISSUER_V1,
    ISSUER_V2,
    OwnCA,
    der_utf8,
)
from hostile_util import (
    Outcome,
    check,
    dumps,
    outcome_of,
)

from keyless.errors import VerificationError
from keyless.formats import sct as sct_format
from keyless.verify.artifact import Artifact
from keyless.verify.errors import (
    CertificateChainError,
    CertificateProfileError,
    EmbeddedSCTError,
    IdentityMismatchError,
)
from keyless.verify.policy import AllOf, GitHubWorkflow, Identity
from keyless.verify.verifier import Verifier

CA = OwnCA()
_verifier: list[Verifier] = []
OTHERNAME = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
Extensions = list[tuple[x509.ExtensionType, bool]]


def verify(cert: x509.Certificate) -> Outcome:
    if not _verifier:
        _verifier.append(CA.verifier())
    return CA.run(CA.bundle(cert), _verifier[0])


def expect(cert: x509.Certificate, error: type[VerificationError], what: str = "leaf") -> None:
    outcome = verify(cert)
    check([(what, outcome, False)])
    assert isinstance(outcome.error, error), f"{what}: {outcome.describe()}"


def accept(cert: x509.Certificate) -> None:
    outcome = verify(cert)
    assert outcome.status == "ok", outcome.describe()


def test_own_ca_leaf_verifies() -> None:
    accept(CA.leaf())


# --- the embedded SCT --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp_ms", "error"),
    [
        pytest.param(253402300800000, EmbeddedSCTError, id="year-10000"),
        pytest.param(2**63, EmbeddedSCTError, id="2^63"),
        pytest.param(2**64 - 1, EmbeddedSCTError, id="2^64-1"),
        pytest.param(0, EmbeddedSCTError, id="1970"),
        pytest.param(253402300799999, None, id="year-9999"),
        pytest.param((INTEGRATED_TIME + 3600) * 1000, None, id="after-signing"),
    ],
)
def test_sct_timestamp(timestamp_ms: int, error: type[VerificationError] | None) -> None:
    cert = CA.leaf(sct=lambda tbs: CA.sct(tbs, timestamp_ms=timestamp_ms))
    if error is None:
        accept(cert)  # the SCT time is not bounded by the certificate (as sigstore-python)
    else:
        expect(cert, error, f"SCT at {timestamp_ms} ms")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x04\x00", id="empty-octets"),
        pytest.param(b"\x04\x04\x00\x02\x00\x00",
                     id="empty-sct"),
        pytest.param(b"\x30\x00", id="sequence"),
        pytest.param(b"\x04\x82\xff\xff", id="length-past-end"),
        pytest.param(bytes(50), id="zeros"),
        pytest.param(b"\x04\x02\x00\x00", id="empty-list"),
    ],
)
def test_malformed_sct_list_extension(raw: bytes) -> None:
    expect(CA.leaf(sct_value=raw), EmbeddedSCTError, f"SCT extension {raw.hex()}")


def test_sct_list_shapes() -> None:
    precert = CA._builder(CA.default_extensions()).sign(CA.ca_key, hashes.SHA256())
    one = CA.sct(precert.tbs_certificate_bytes)
    expect(CA.leaf(sct_value=sct_format.encode_sct_list_extension([one, one])), EmbeddedSCTError,
           "two SCTs")
    expect(CA.leaf(sct=lambda tbs: CA.sct(tbs, log_id=bytes(32))), EmbeddedSCTError,
           "unknown CT log")
    other_tbs = CA.sct(b"another certificate")
    expect(CA.leaf(sct_value=sct_format.encode_sct_list_extension([other_tbs])), EmbeddedSCTError,
           "SCT over another certificate")
    accept(CA.leaf(sct=lambda tbs: CA.sct(tbs, extensions=b"\xff" * 100)))  # opaque extensions


# --- profile and identity ----------------------------------------------------------------------


def _replace(index: int, ext: x509.ExtensionType, critical: bool = False) -> Extensions:
    exts = CA.default_extensions()
    exts[index] = (ext, critical)
    return exts


def _without(index: int) -> Extensions:
    exts = CA.default_extensions()
    del exts[index]
    return exts


KU, EKU, SKI, AKI, SAN, ISS1, ISS2 = range(7)
LEAVES: dict[str, tuple[Callable[[], Extensions], type[VerificationError] | None]] = {
    "no KeyUsage": (lambda: _without(KU), CertificateProfileError),
    "no ExtendedKeyUsage": (lambda: _without(EKU), CertificateProfileError),
    "no SAN": (lambda: _without(SAN), CertificateChainError),
    "no AKI": (lambda: _without(AKI), CertificateChainError),
    "KeyUsage without digitalSignature": (lambda: _replace(KU, x509.KeyUsage(
        False, False, True, False, False, False, False, False, False), True),
        CertificateProfileError),
    "EKU serverAuth": (lambda: _replace(EKU, x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH])), CertificateProfileError),
    "CA:TRUE leaf": (lambda: [*CA.default_extensions(), (x509.BasicConstraints(
        ca=True, path_length=None), True)], CertificateChainError),
    "unknown critical extension": (lambda: [*CA.default_extensions(), (
        x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00"), True)],
        CertificateChainError),
    "no issuer extension .1 (.8 remains)": (lambda: _without(ISS1), None),
    "no issuer extension .8 (.1 remains)": (lambda: _without(ISS2), None),
    "no issuer extension at all": (lambda: [e for i, e in enumerate(CA.default_extensions())
                                            if i not in (ISS1, ISS2)], IdentityMismatchError),
    "issuer .1 differs from .8": (lambda: _replace(ISS1, x509.UnrecognizedExtension(
        ISSUER_V1, b"https://other.test")), IdentityMismatchError),
    "issuer .1 not UTF-8": (lambda: _replace(ISS1, x509.UnrecognizedExtension(
        ISSUER_V1, b"\xff\xfe")), IdentityMismatchError),
    "issuer .1 UTF-8 surrogate": (lambda: _replace(ISS1, x509.UnrecognizedExtension(
        ISSUER_V1, b"\xed\xa0\x80")), IdentityMismatchError),
    "issuer .1 of 100 kB": (lambda: _replace(ISS1, x509.UnrecognizedExtension(
        ISSUER_V1, b"A" * 100_000)), IdentityMismatchError),
    "issuer .8 raw, not DER": (lambda: _replace(ISS2, x509.UnrecognizedExtension(
        ISSUER_V2, ISSUER.encode())), IdentityMismatchError),
    "issuer .8 with a 4 GB length": (lambda: _replace(ISS2, x509.UnrecognizedExtension(
        ISSUER_V2, b"\x0c\x84\xff\xff\xff\xff")), IdentityMismatchError),
    "issuer .8 indefinite length": (lambda: _replace(ISS2, x509.UnrecognizedExtension(
        ISSUER_V2, b"\x0c\x80")), IdentityMismatchError),
    "issuer .8 empty": (lambda: _replace(ISS2, x509.UnrecognizedExtension(ISSUER_V2, b"")),
                        IdentityMismatchError),
    "issuer .8 PrintableString": (lambda: _replace(ISS2, x509.UnrecognizedExtension(
        ISSUER_V2, b"\x13" + der_utf8(ISSUER)[1:])), IdentityMismatchError),
    "SAN URI": (lambda: _replace(SAN, x509.SubjectAlternativeName(
        [x509.UniformResourceIdentifier(IDENTITY)]), True), None),
    "SAN OtherName": (lambda: _replace(SAN, x509.SubjectAlternativeName(
        [x509.OtherName(OTHERNAME, der_utf8(IDENTITY))]), True), None),
    "SAN OtherName of another type": (lambda: _replace(SAN, x509.SubjectAlternativeName(
        [x509.OtherName(OTHERNAME, b"\x04\x01x")]), True), IdentityMismatchError),
    "SAN second of two": (lambda: _replace(SAN, x509.SubjectAlternativeName(
        [x509.RFC822Name("other@example.com"), x509.RFC822Name(IDENTITY)]), True), None),
    "SAN DNS": (lambda: _replace(SAN, x509.SubjectAlternativeName(
        [x509.DNSName("example.com")]), True), IdentityMismatchError),
    "SAN IP": (lambda: _replace(SAN, x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address("192.0.2.1"))]), True), IdentityMismatchError),
    "SAN directoryName": (lambda: _replace(SAN, x509.SubjectAlternativeName(
        [x509.DirectoryName(x509.Name([]))]), True), IdentityMismatchError),
    "SAN registeredID": (lambda: _replace(SAN, x509.SubjectAlternativeName(
        [x509.RegisteredID(x509.ObjectIdentifier("1.2.3"))]), True), IdentityMismatchError),
    "SAN identity with a NUL": (lambda: _replace(SAN, x509.SubjectAlternativeName(
        [x509.UniformResourceIdentifier(IDENTITY + "\x00.evil")]), True), IdentityMismatchError),
}


@pytest.mark.parametrize("name", list(LEAVES))
def test_leaf_profile_and_identity(name: str) -> None:
    build, error = LEAVES[name]
    cert = CA.leaf(extensions=build())
    if error is None:
        accept(cert)
    else:
        expect(cert, error, name)


def _claims() -> list[object]:
    out: list[object] = []
    for oid in ("1.3.6.1.4.1.57264.1.2", "1.3.6.1.4.1.57264.1.5", "1.3.6.1.4.1.57264.1.12",
                "1.3.6.1.4.1.57264.1.14"):
        for name, value in (("not-utf8", b"\xff"), ("der-in-raw", b"\x0c\x05ab"), ("empty", b""),
                            ("4GB-length", b"\x0c\x84\x7f\xff\xff\xff"), ("10kB", b"A" * 10_000)):
            out.append(pytest.param(oid, value, id=f"{oid.rsplit('.', 1)[1]}-{name}"))
    return out


@pytest.mark.parametrize(("oid", "value"), _claims())
def test_hostile_github_claims(oid: str, value: bytes) -> None:
    """GitHub workflow claims (.2-.6 raw, .9-.22 DER) that do not decode or do not match."""
    ext = (x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), False)
    bundle = CA.bundle(CA.leaf(extensions=[*CA.default_extensions(), ext]))
    if not _verifier:
        _verifier.append(CA.verifier())
    policy = AllOf([Identity(issuer=ISSUER, identity=IDENTITY),
                    GitHubWorkflow(repository="a/b", ref="refs/heads/main", trigger="push")])
    artifact = Artifact.from_bytes(ARTIFACT)
    outcome = outcome_of(lambda: _verifier[0].verify(dumps(bundle), artifact, policy=policy))
    check([(f"{oid}={value[:8]!r}", outcome, False)])
    assert isinstance(outcome.error, IdentityMismatchError), outcome.describe()


# --- the logged certificate PEM (hashedrekord 0.0.1 publicKey.content) -------------------------

_B, _E = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"


def _wrap(data: bytes, width: int = 64) -> bytes:
    return b"\n".join(data[i : i + width] for i in range(0, len(data), width))


def _pem_variants(der: bytes, other: bytes) -> dict[str, bytes]:
    enc, oth = base64.b64encode(der), base64.b64encode(other)
    return {
        "64 columns": _B + b"\n" + _wrap(enc) + b"\n" + _E + b"\n",
        "one line": _B + b"\n" + enc + b"\n" + _E + b"\n",
        "76 columns": _B + b"\n" + _wrap(enc, 76) + b"\n" + _E + b"\n",
        "CRLF": (_B + b"\n" + _wrap(enc) + b"\n" + _E + b"\n").replace(b"\n", b"\r\n"),
        "no final newline": _B + b"\n" + enc + b"\n" + _E,
        "blank line": _B + b"\n\n" + enc + b"\n" + _E + b"\n",
        "trailing spaces": _B + b"\n" + _wrap(enc).replace(b"\n", b" \n") + b"\n" + _E + b"\n",
        "tab": _B + b"\n\t" + enc + b"\n" + _E + b"\n",
        "ours then another": _B + b"\n" + enc + b"\n" + _E + b"\n" + _B + b"\n" + oth + b"\n"
        + _E + b"\n",
        "another then ours": _B + b"\n" + oth + b"\n" + _E + b"\n" + _B + b"\n" + enc + b"\n"
        + _E + b"\n",
        "text around": b"garbage\n" + _B + b"\n" + enc + b"\n" + _E + b"\ngarbage\n",
        "DER with a trailing byte": _B + b"\n" + base64.b64encode(der + b"\0") + b"\n" + _E + b"\n",
        "lower-case armour": _B.lower() + b"\n" + enc + b"\n" + _E.lower() + b"\n",
        "X509 CERTIFICATE": _B.replace(b"CERT", b"X509 CERT") + b"\n" + enc + b"\n"
        + _E.replace(b"CERT", b"X509 CERT") + b"\n",
        "TRUSTED CERTIFICATE": _B.replace(b"CERT", b"TRUSTED CERT") + b"\n" + enc + b"\n"
        + _E.replace(b"CERT", b"TRUSTED CERT") + b"\n",
        "URL-safe base64": _B + b"\n" + base64.urlsafe_b64encode(der) + b"\n" + _E + b"\n",
        "no padding": _B + b"\n" + enc.rstrip(b"=") + b"\n" + _E + b"\n",
        "RFC 1421 header": _B + b"\nProc-Type: 4,ENCRYPTED\n\n" + enc + b"\n" + _E + b"\n",
        "mismatched END": _B + b"\n" + enc + b"\n-----END PUBLIC KEY-----\n",
        "BEGIN only": _B + b"\n" + enc + b"\n",
        "another certificate": _B + b"\n" + oth + b"\n" + _E + b"\n",
    }


def test_logged_certificate_pem_spellings_match_the_general_pem_reader() -> None:
    """Differential: the verifier's PEM comparison (a hot-path shortcut plus cryptography's
    loader) accepts a logged PEM exactly when cryptography's PEM reader yields the leaf."""
    cert = CA.leaf()
    der = cert.public_bytes(serialization.Encoding.DER)
    other = OwnCA().leaf().public_bytes(serialization.Encoding.DER)
    if not _verifier:
        _verifier.append(CA.verifier())
    disagreements = []
    for name, pem in _pem_variants(der, other).items():
        try:
            same = x509.load_pem_x509_certificate(pem).public_bytes(
                serialization.Encoding.DER) == der
        except ValueError:
            same = False
        outcome = CA.run(CA.bundle(cert, cert_pem=pem), _verifier[0])
        check([(name, outcome, same)])
        if (outcome.status == "ok") != same:
            disagreements.append(f"{name}: verifier {outcome.describe()}, reader {same}")
    assert not disagreements, disagreements
