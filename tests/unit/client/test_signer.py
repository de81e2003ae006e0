"""Signer failure handling against small fake HTTP handlers (httpx.MockTransport), and the
Rekor v1 response conversion against a real public-good entry. The happy path runs against the
real services in tests/integration/client."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from _client_vectors import SP, read, root
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keyless.errors import InvalidInput
from keyless.formats.bundle import Bundle
from keyless.formats.jsonreader import ValidityPeriod
from keyless.formats.signingconfig import Service
from keyless.sign import (
    RENEW_MARGIN,
    Signer,
    SigningError,
    SigningServices,
    entry_from_rekor_v1,
)

PAST = ValidityPeriod(datetime(2020, 1, 1, tzinfo=UTC))


def _services(rekor: int = 2) -> SigningServices:
    return SigningServices(
        ca=Service("http://ca.test", 1, PAST, "t"),
        rekor=Service("http://rekor.test", rekor, PAST, "t"),
        tsas=(Service("http://tsa.test/api/v1/timestamp", 1, PAST, "t"),),
    )


def _chain_for(public_key: ec.EllipticCurvePublicKey) -> list[str]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake CA")])
    now = datetime.now(UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(2)
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(minutes=9))
        .add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name("a@example.com")]), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    return [c.public_bytes(serialization.Encoding.PEM).decode() for c in (leaf, ca)]


def _signer(
    handler: httpx.MockTransport, key: ec.EllipticCurvePrivateKey, rekor: int = 2
) -> Signer:
    return Signer(
        trusted_root=root("staging"),
        services=_services(rekor),
        identity_token="tok",
        http=httpx.Client(transport=handler),
        key=key,
        check_sct=False,
    )


def _ca_ok(public_key: ec.EllipticCurvePublicKey) -> httpx.Response:
    chain = _chain_for(public_key)
    return httpx.Response(
        200, json={"signedCertificateEmbeddedSct": {"chain": {"certificates": chain}}}
    )


def test_ca_refusal_is_reported_with_its_message() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, json={"code": 401, "message": "identity token expired"})

    with pytest.raises(SigningError, match="identity token expired"):
        _signer(httpx.MockTransport(handle), key).sign_artifact(b"x")
    request = seen[0]
    assert request.url.path == "/api/v2/signingCert"
    assert request.headers["Authorization"] == "Bearer tok"
    csr_pem = base64.b64decode(json.loads(request.content)["certificateSigningRequest"])
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.subject == x509.Name([]) and csr.is_signature_valid
    assert csr.extensions.get_extension_for_class(x509.BasicConstraints).critical


def test_ca_certifying_another_key_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    transport = httpx.MockTransport(lambda request: _ca_ok(other))
    with pytest.raises(SigningError, match="another public key"):
        _signer(transport, key).sign_artifact(b"x")


def test_rekor_v2_without_any_timestamp_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    paths: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.host == "ca.test":
            return _ca_ok(key.public_key())
        return httpx.Response(503, text="down")

    with pytest.raises(SigningError, match="needs one"):
        _signer(httpx.MockTransport(handle), key).sign_artifact(b"x")
    assert "/api/v2/log/entries" not in paths, "nothing may be logged without a timestamp"


def test_rekor_v1_response_conversion_matches_the_bundle() -> None:
    bundle = Bundle.from_json(read(SP / "bundle.txt.sigstore"))
    entry = bundle.verification_material.tlog_entries[0]
    proof = entry.inclusion_proof
    assert proof is not None and entry.inclusion_promise is not None
    response = {
        "body": base64.b64encode(entry.canonicalized_body).decode(),
        "integratedTime": entry.integrated_time,
        "logID": entry.log_id.hex(),
        "logIndex": entry.log_index,
        "verification": {
            "signedEntryTimestamp": base64.b64encode(entry.inclusion_promise).decode(),
            "inclusionProof": {
                "logIndex": proof.log_index,
                "rootHash": proof.root_hash.hex(),
                "treeSize": proof.tree_size,
                "hashes": [h.hex() for h in proof.hashes],
                "checkpoint": proof.checkpoint,
            },
        },
    }
    assert entry_from_rekor_v1(response) == entry
    del response["verification"]["inclusionProof"]["checkpoint"]  # type: ignore[index]
    with pytest.raises(InvalidInput, match=r"inclusionProof\.checkpoint is missing"):
        entry_from_rekor_v1(response)


def test_a_batch_outliving_its_certificate_gets_a_new_one() -> None:
    """One certificate serves many files, but never past its end (RENEW_MARGIN before it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    certified: list[bytes] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "ca.test":
            pem = base64.b64decode(json.loads(request.content)["certificateSigningRequest"])
            public = x509.load_pem_x509_csr(pem).public_key()
            assert isinstance(public, ec.EllipticCurvePublicKey)
            certified.append(public.public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo))
            return _ca_ok(public)
        return httpx.Response(503, text="down")  # no timestamp: each signing stops after the cert

    now = [datetime.now(UTC).timestamp()]
    signer = Signer(trusted_root=root("staging"), services=_services(2), identity_token="tok",
                    http=httpx.Client(transport=httpx.MockTransport(handle)), key=key,
                    check_sct=False, clock=lambda: now[0])
    for _ in range(2):
        with pytest.raises(SigningError, match="needs one"):
            signer.sign_artifact(b"x")
    assert len(certified) == 1, "files signed inside the validity share one certificate"
    first = signer.certificate
    now[0] = first.not_valid_after_utc.timestamp() - RENEW_MARGIN + 1
    with pytest.raises(SigningError, match="needs one"):
        signer.sign_artifact(b"y")
    assert len(certified) == 2 and certified[0] != certified[1], "a new key, a new certificate"
    assert signer.certificate != first


def test_renewal_refused_says_the_certificate_expired() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    calls = [0]

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "ca.test":
            calls[0] += 1
            if calls[0] == 1:
                return _ca_ok(key.public_key())
            return httpx.Response(401, json={"code": 401, "message": "identity token expired"})
        return httpx.Response(503, text="down")

    now = [datetime.now(UTC).timestamp()]
    signer = Signer(trusted_root=root("staging"), services=_services(2), identity_token="tok",
                    http=httpx.Client(transport=httpx.MockTransport(handle)), key=key,
                    check_sct=False, clock=lambda: now[0])
    with pytest.raises(SigningError, match="needs one"):
        signer.sign_artifact(b"x")
    now[0] += 3600
    with pytest.raises(SigningError, match=r"expired and a new one was refused.*token expired"):
        signer.sign_artifact(b"x")
