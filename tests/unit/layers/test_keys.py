"""keyless.keys: the one home of the algorithm choices shared by signers, logs and verifiers."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyless.keys import (
    KEY_DETAILS,
    InMemorySigner,
    KeySigner,
    ecdsa_for_curve,
    generate_key,
    hash_for_curve,
    key_details,
    signature_hash,
    spki_der,
)


@pytest.mark.parametrize(
    ("curve", "details", "digest"),
    [
        (ec.SECP256R1(), "PKIX_ECDSA_P256_SHA_256", hashes.SHA256),
        (ec.SECP384R1(), "PKIX_ECDSA_P384_SHA_384", hashes.SHA384),
        (ec.SECP521R1(), "PKIX_ECDSA_P521_SHA_512", hashes.SHA512),
    ],
)
def test_an_ecdsa_key_signs_with_the_hash_its_details_name(
    curve: ec.EllipticCurve, details: str, digest: type[hashes.HashAlgorithm]
) -> None:
    signer = InMemorySigner(ec.generate_private_key(curve))
    public = signer.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert key_details(public) == details
    assert isinstance(hash_for_curve(curve), digest)
    assert isinstance(signature_hash(public), digest)
    assert KEY_DETAILS[details][1] == "SHA2_" + digest.name[3:]
    public.verify(signer.sign(b"data"), b"data", ec.ECDSA(digest()))


def test_ed25519_is_pure_in_a_trusted_root_and_prehashed_in_rekor_v2() -> None:
    public = InMemorySigner(generate_key("ed25519")).public_key()
    assert key_details(public) == "PKIX_ED25519"
    assert key_details(public, prehashed=True) == "PKIX_ED25519_PH"
    assert signature_hash(public) is None


def test_keys_outside_the_registry_have_no_details() -> None:
    assert key_details(ec.generate_private_key(ec.SECP256K1()).public_key()) is None
    assert key_details(rsa.generate_private_key(65537, 1024).public_key()) is None
    assert key_details(b"not a key") is None


def test_spki_der_round_trips_and_in_memory_signer_is_a_key_signer() -> None:
    signer = InMemorySigner(ed25519.Ed25519PrivateKey.generate())
    assert isinstance(signer, KeySigner)
    der = spki_der(signer.public_key())
    assert serialization.load_der_public_key(der) == signer.public_key()


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_the_ecdsa_algorithm_object_is_made_once_per_curve(curve: ec.EllipticCurve) -> None:
    algorithm = ecdsa_for_curve(curve)
    assert algorithm is ecdsa_for_curve(type(curve)())
    assert isinstance(algorithm.algorithm, type(hash_for_curve(curve)))
    key = ec.generate_private_key(curve)
    signature = InMemorySigner(key).sign(b"message")
    key.public_key().verify(signature, b"message", ec.ECDSA(hash_for_curve(curve)))
