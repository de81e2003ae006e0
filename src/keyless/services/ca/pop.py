"""Proof of possession of the key to certify (protocols.md §1.2; Fulcio ``pkg/challenges``).

Two request dialects prove possession differently:

* a PKCS#10 CSR (sigstore-python, cosign): the CSR's self-signature, with the hash its signature
  algorithm names; the subject and requested extensions are ignored (the CA decides the profile);
* a public key + ``proofOfPossession`` (sigstore-js, legacy ``signedEmailAddress``): a signature
  over the UTF-8 bytes of the identity's challenge value (``email`` for email issuers, else
  ``sub``), with the default hash of the key type.

Either way the (key, hash) pair must be one of Fulcio's default ``--client-signing-algorithms``:
ECDSA P-256/SHA-256, P-384/SHA-384, P-521/SHA-512, RSA PKCS#1 v1.5 2048/3072/4096 with SHA-256,
and Ed25519.
"""

from __future__ import annotations

import base64
import binascii

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from keyless.errors import InvalidInput
from keyless.keys import PublicKey, ecdsa_for_curve, key_details, signature_hash

#: Fulcio's message when a proof does not verify (``pkg/server/error.go``).
INVALID_SIGNATURE = "The signature supplied in the request could not be verified"


class ProofError(InvalidInput):
    """The proof of possession is missing, malformed or does not verify (HTTP 400)."""


def check_key_allowed(key: object) -> PublicKey:
    """Refuse key types and sizes outside the allowed signing algorithms."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key_details(key) is None:
            raise ProofError(f"ECDSA curve {key.curve.name} is not allowed (P-256, P-384, P-521)")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key_details(key) is None:
            raise ProofError(f"RSA key size {key.key_size} is not allowed (2048, 3072, 4096)")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise ProofError(f"public key type {type(key).__name__} is not allowed")


def default_hash(key: PublicKey) -> hashes.HashAlgorithm | None:
    """The hash a proof over a challenge uses for ``key`` (None: Ed25519 signs the message)."""
    return signature_hash(key)


def parse_public_key(content: str | bytes) -> PublicKey:
    """A public key given as PEM, or as DER SubjectPublicKeyInfo (raw or base64)."""
    key: object
    try:
        data = content.encode() if isinstance(content, str) else content
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            try:
                key = serialization.load_der_public_key(data)
            except ValueError:
                key = serialization.load_der_public_key(base64.b64decode(data, validate=True))
    except (ValueError, UnsupportedAlgorithm, binascii.Error) as exc:  # UnicodeError included
        raise ProofError(f"publicKey.content is not a PEM or DER public key: {exc}") from exc
    return check_key_allowed(key)


def verify_challenge(key: PublicKey, signature: bytes, challenge: str) -> None:
    """Check a signature over the challenge value (email or subject); raise :class:`ProofError`."""
    message = challenge.encode()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ecdsa_for_curve(key.curve))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
    except InvalidSignature as exc:
        raise ProofError(INVALID_SIGNATURE) from exc


def parse_csr(data: bytes) -> x509.CertificateSigningRequest:
    """A PKCS#10 request given as PEM (or DER) bytes."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is no ValueError
        raise ProofError(f"certificateSigningRequest is not a PKCS#10 request: {exc}") from exc


def verify_csr(csr: x509.CertificateSigningRequest) -> PublicKey:
    """The CSR's key after checking its self-signature and (key, hash) pair."""
    try:
        key = check_key_allowed(csr.public_key())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ProofError(f"the CSR's public key cannot be read: {exc}") from exc
    try:
        algorithm = csr.signature_hash_algorithm
    except UnsupportedAlgorithm as exc:
        raise ProofError(f"the CSR's signature algorithm is not allowed: {exc}") from exc
    expected = default_hash(key)
    pss = isinstance(csr.signature_algorithm_parameters, padding.PSS)
    if isinstance(key, rsa.RSAPublicKey) and pss:
        raise ProofError("RSA-PSS CSR signatures are not allowed (PKCS#1 v1.5 with SHA-256)")
    if (expected is None) != (algorithm is None) or (
        expected is not None and algorithm is not None and expected.name != algorithm.name
    ):
        have = algorithm.name if algorithm is not None else "none"
        want = expected.name if expected is not None else "none"
        raise ProofError(f"CSR is signed with {have}; this key type must use {want}")
    if not csr.is_signature_valid:
        raise ProofError(INVALID_SIGNATURE)
    return key


