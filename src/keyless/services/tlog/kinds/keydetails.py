"""The ``PublicKeyDetails`` a Rekor v2 log accepts, and what each one implies.

rekor-tiles (``internal/algorithmregistry``, protocols.md §4) accepts RSA PKCS#1 v1.5 2048/3072/4096
with SHA-256, ECDSA P-256/SHA-256, P-384/SHA-384, P-521/SHA-512 and Ed25519ph; the declared
details must match the actual key, and fix the digest's hash. Pure ``PKIX_ED25519`` is accepted
here for DSSE only, where the signed message (the PAE) is available to the log.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyless.errors import InvalidInput, shown
from keyless.services.tlog.kinds.common import Verifier

#: keyDetails → (key check, HashAlgorithm name of the digest).
_ALLOWED: dict[str, tuple[str, str]] = {
    "PKIX_ECDSA_P256_SHA_256": ("ec:secp256r1", "SHA2_256"),
    "PKIX_ECDSA_P384_SHA_384": ("ec:secp384r1", "SHA2_384"),
    "PKIX_ECDSA_P521_SHA_512": ("ec:secp521r1", "SHA2_512"),
    "PKIX_RSA_PKCS1V15_2048_SHA256": ("rsa:2048", "SHA2_256"),
    "PKIX_RSA_PKCS1V15_3072_SHA256": ("rsa:3072", "SHA2_256"),
    "PKIX_RSA_PKCS1V15_4096_SHA256": ("rsa:4096", "SHA2_256"),
    "PKIX_ED25519_PH": ("ed25519", "SHA2_512"),
    "PKIX_ED25519": ("ed25519", "SHA2_512"),
}


def _key_class(verifier: Verifier) -> str:
    key = verifier.key
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ec:{key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"rsa:{key.key_size}"
    assert isinstance(key, ed25519.Ed25519PublicKey)
    return "ed25519"


def check_key_details(verifier: Verifier, details: str, what: str) -> None:
    """Refuse details outside the allowed set, or that do not describe ``verifier``'s key."""
    if details not in _ALLOWED:
        raise InvalidInput(
            f"{what} {shown(details)} is not an allowed algorithm; allowed: {', '.join(_ALLOWED)}"
        )
    expected, _ = _ALLOWED[details]
    actual = _key_class(verifier)
    if actual != expected:
        raise InvalidInput(f"{what} is {details} but the key is {actual}")


def hash_name_for(details: str) -> str:
    """The digest algorithm (protobuf ``HashAlgorithm`` name) implied by ``details``."""
    return _ALLOWED[details][1]


def details_for(verifier: Verifier) -> str:
    """The canonical details of a key (ECDSA by curve, RSA by size, Ed25519 as pure)."""
    actual = _key_class(verifier)
    for name, (cls, _) in _ALLOWED.items():
        if cls == actual:
            return name
    raise InvalidInput(f"no allowed algorithm for a {actual} key")  # pragma: no cover
