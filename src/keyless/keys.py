"""Keys, pure: key types, the signer protocol, the in-memory signer, SPKI DER and the algorithm
choices every part of keyless shares (which hash a key signs with, which ``PublicKeyDetails``
name describes it).

This is the ground floor under :mod:`keyless.formats`, :mod:`keyless.merkle`, the services and
the verifier: no I/O and no import of anything above it. Loading keys from files or an HSM is
:mod:`keyless.storage.keyfiles` and :mod:`keyless.storage.pkcs11`; both produce a
:class:`KeySigner`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from keyless.errors import ConfigError

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
SignatureHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512


@runtime_checkable
class KeySigner(Protocol):
    """Something that signs bytes with a private key it may not reveal (a service's key).

    Not to be confused with :class:`keyless.sign.Signer`, the client that signs artifacts.
    """

    def public_key(self) -> PublicKey:
        """The public half of the key."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Sign ``data``: ECDSA (DER, hash by curve), Ed25519 (pure), RSA PKCS#1 v1.5 SHA-256."""
        ...


# --- algorithm choices -----------------------------------------------------------------------


def hash_for_curve(curve: ec.EllipticCurve) -> SignatureHash:
    """The hash paired with an ECDSA curve (P-256→SHA-256, P-384→SHA-384, P-521→SHA-512), as the
    Sigstore algorithm registry and every :class:`KeySigner` use it."""
    if isinstance(curve, ec.SECP384R1):
        return hashes.SHA384()
    if isinstance(curve, ec.SECP521R1):
        return hashes.SHA512()
    return hashes.SHA256()


#: One immutable ``ECDSA`` signature-algorithm object per curve name, made once: building one
#: (with its hash object) costs about as much per call as hashing a short message.
_ECDSA: dict[str, ec.ECDSA] = {}


def ecdsa_for_curve(curve: ec.EllipticCurve) -> ec.ECDSA:
    """``ec.ECDSA(hash_for_curve(curve))``, shared per curve (the objects are never mutated)."""
    algorithm = _ECDSA.get(curve.name)
    if algorithm is None:
        algorithm = _ECDSA[curve.name] = ec.ECDSA(hash_for_curve(curve))
    return algorithm


def signature_hash(public_key: PublicKey) -> SignatureHash | None:
    """The hash a :class:`KeySigner` signs with for this key type (``None``: Ed25519, pure)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return hash_for_curve(public_key.curve)
    if isinstance(public_key, rsa.RSAPublicKey):
        return hashes.SHA256()
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return None
    raise ConfigError(f"unsupported key type {type(public_key).__name__}")


#: ``PublicKeyDetails`` name (protobuf-specs ``sigstore_common.proto``) → (key class as
#: :func:`key_class` names it, ``HashAlgorithm`` name of the digest it implies). The algorithm
#: registry of Sigstore (rekor-tiles ``internal/algorithmregistry``, protocols.md §4, §6).
KEY_DETAILS: dict[str, tuple[str, str]] = {
    "PKIX_ECDSA_P256_SHA_256": ("ec:secp256r1", "SHA2_256"),
    "PKIX_ECDSA_P384_SHA_384": ("ec:secp384r1", "SHA2_384"),
    "PKIX_ECDSA_P521_SHA_512": ("ec:secp521r1", "SHA2_512"),
    "PKIX_RSA_PKCS1V15_2048_SHA256": ("rsa:2048", "SHA2_256"),
    "PKIX_RSA_PKCS1V15_3072_SHA256": ("rsa:3072", "SHA2_256"),
    "PKIX_RSA_PKCS1V15_4096_SHA256": ("rsa:4096", "SHA2_256"),
    "PKIX_ED25519_PH": ("ed25519", "SHA2_512"),
    "PKIX_ED25519": ("ed25519", "SHA2_512"),
}


def key_class(key: object) -> str:
    """``ec:<curve name>``, ``rsa:<bits>``, ``ed25519`` (or the type name of anything else)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ec:{key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"rsa:{key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    return type(key).__name__


def key_details(key: object, *, prehashed: bool = False) -> str | None:
    """The ``PublicKeyDetails`` name of ``key``, ``None`` when the registry has none for it.

    Ed25519 is ``PKIX_ED25519`` (trusted roots), or ``PKIX_ED25519_PH`` with ``prehashed``
    (what Rekor v2 records for a signature over a digest).
    """
    actual = key_class(key)
    if actual == "ed25519":
        return "PKIX_ED25519_PH" if prehashed else "PKIX_ED25519"
    for name, (cls, _) in KEY_DETAILS.items():
        if cls == actual:
            return name
    return None


# --- encodings -------------------------------------------------------------------------------


def spki_der(key: PublicKeyTypes) -> bytes:
    """DER ``SubjectPublicKeyInfo`` of ``key`` (RFC 5280 §4.1): the basis of log IDs and key
    fingerprints."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- keys in memory --------------------------------------------------------------------------


class InMemorySigner:
    """A :class:`KeySigner` over a private key held in this process."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        self._ecdsa: ec.ECDSA | None = None
        if isinstance(key, ec.EllipticCurvePrivateKey):
            self._ecdsa = ecdsa_for_curve(key.curve)

    @property
    def private_key(self) -> PrivateKey:
        """The key itself (for libraries such as ``cryptography``'s X.509 builder)."""
        return self._key

    def public_key(self) -> PublicKey:
        return self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, self._ecdsa or ecdsa_for_curve(key.curve))
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        from cryptography.hazmat.primitives.asymmetric import padding

        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def generate_key(kind: str = "ecdsa-p256") -> PrivateKey:
    """Generate a fresh private key: ``ecdsa-p256``, ``ecdsa-p384``, ``ed25519`` or ``rsa-3072``."""
    if kind == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "rsa-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ConfigError(f"unknown key kind {kind!r}")
