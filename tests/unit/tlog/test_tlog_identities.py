"""Which certificates' identities the search index believes: only those that chain to a trusted
CA. A look-alike CA (same name, other key) or a self-signed certificate naming someone gets no
identity keys; path validation runs only for a certificate that names an identity."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tlog_support import (
    CA,
    EMAIL,
    ISSUER,
    CountingIssuers,
    Signer,
    hashedrekord_v2,
    naming_email,
    spki,
)

from keyless.services.tlog.identities import TrustedIssuers
from keyless.services.tlog.kinds import propose_v2
from keyless.services.tlog.search import ISSUER_V1, ISSUER_V2, certificate_keys, keys_for_body

IDENTITY = f"identity:{ISSUER}|{EMAIL}"


def _identity_keys(keys: list[str]) -> list[str]:
    return [k for k in keys if k.split(":")[0] in ("email", "uri", "identity")]


def _fingerprint(cert: x509.Certificate) -> str:
    return "key:sha256:" + hashlib.sha256(spki(cert.public_key())).hexdigest()


def test_a_look_alike_ca_vouches_for_nothing() -> None:
    """Issuer name of a trusted CA, signed by another key: the signature decides."""
    trusted, look_alike = CA.create(), CA.create()
    assert look_alike.cert.subject == trusted.cert.subject
    signer = Signer.create(look_alike)
    assert signer.cert.issuer == trusted.cert.subject
    body = propose_v2(hashedrekord_v2(signer, b"artifact")).body
    keys = keys_for_body(body, TrustedIssuers([trusted.cert]))
    assert _fingerprint(signer.cert) in keys
    assert _identity_keys(keys) == []
    assert IDENTITY in keys_for_body(body, TrustedIssuers([look_alike.cert]))


def test_a_self_signed_certificate_naming_someone_gets_no_identity() -> None:
    ca = CA.create()
    key = ec.generate_private_key(ec.SECP256R1())
    name = ca.cert.subject  # even a self-signed look-alike of the trusted CA itself
    cert = (
        naming_email(name, name, key)
        .add_extension(x509.UnrecognizedExtension(ISSUER_V1, ISSUER.encode()), critical=False)
        .sign(key, hashes.SHA256())
    )
    keys = certificate_keys(cert, TrustedIssuers([ca.cert]))
    assert keys == [_fingerprint(cert)]


def test_path_validation_runs_only_for_a_certificate_that_names_an_identity() -> None:
    ca = CA.create()
    trusted = CountingIssuers([ca.cert])
    anonymous = Signer.create(ca, email=None).cert  # empty SAN: nothing to index
    assert certificate_keys(anonymous, trusted) == [_fingerprint(anonymous)]
    assert trusted.checked == []
    named = Signer.create(ca).cert
    assert IDENTITY in certificate_keys(named, trusted)
    assert trusted.checked == [named]


def test_the_v2_issuer_extension_wins_and_a_malformed_one_falls_back_to_v1() -> None:
    ca = CA.create()
    key = ec.generate_private_key(ec.SECP256R1())

    def leaf(v1: bytes | None, v2: bytes | None) -> x509.Certificate:
        leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")])
        builder = naming_email(leaf_name, ca.cert.subject, key)
        if v1 is not None:
            builder = builder.add_extension(x509.UnrecognizedExtension(ISSUER_V1, v1), False)
        if v2 is not None:
            builder = builder.add_extension(x509.UnrecognizedExtension(ISSUER_V2, v2), False)
        return builder.sign(ca.key, hashes.SHA384())

    trusted = TrustedIssuers([ca.cert])
    assert f"identity:https://v2|{EMAIL}" in certificate_keys(
        leaf(b"https://v1", b"\x0c\x0ahttps://v2"), trusted)
    assert f"identity:https://v1|{EMAIL}" in certificate_keys(
        leaf(b"https://v1", b"\x04\x0ahttps://v2"), trusted)  # OCTET STRING, not UTF8String
    only_san = certificate_keys(leaf(None, None), trusted)
    assert f"email:{EMAIL}" in only_san
    assert not [k for k in only_san if k.startswith("identity:")]
