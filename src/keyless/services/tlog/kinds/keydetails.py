"""The ``PublicKeyDetails`` a Rekor v2 log accepts, and what each one implies.

rekor-tiles (``internal/algorithmregistry``, protocols.md §4) accepts RSA PKCS#1 v1.5 2048/3072/4096
with SHA-256, ECDSA P-256/SHA-256, P-384/SHA-384, P-521/SHA-512 and Ed25519ph; the declared
details must match the actual key, and fix the digest's hash. Pure ``PKIX_ED25519`` is accepted
here for DSSE only, where the signed message (the PAE) is available to the log.
"""

from __future__ import annotations

from keyless.errors import InvalidInput, shown
from keyless.keys import KEY_DETAILS, key_class, key_details
from keyless.services.tlog.kinds.common import Verifier

#: keyDetails → (key check, HashAlgorithm name of the digest): the registry of keyless.keys.
_ALLOWED = KEY_DETAILS


def check_key_details(verifier: Verifier, details: str, what: str) -> None:
    """Refuse details outside the allowed set, or that do not describe ``verifier``'s key."""
    if details not in _ALLOWED:
        raise InvalidInput(
            f"{what} {shown(details)} is not an allowed algorithm; allowed: {', '.join(_ALLOWED)}"
        )
    expected, _ = _ALLOWED[details]
    actual = key_class(verifier.key)
    if actual != expected:
        raise InvalidInput(f"{what} is {details} but the key is {actual}")


def hash_name_for(details: str) -> str:
    """The digest algorithm (protobuf ``HashAlgorithm`` name) implied by ``details``."""
    return _ALLOWED[details][1]


def details_for(verifier: Verifier) -> str:
    """The canonical details of a key (ECDSA by curve, RSA by size, Ed25519 as prehashed)."""
    details = key_details(verifier.key, prehashed=True)
    if details is None:  # pragma: no cover
        raise InvalidInput(f"no allowed algorithm for a {key_class(verifier.key)} key")
    return details
