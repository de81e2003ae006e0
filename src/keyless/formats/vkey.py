"""Note verifier keys (``vkey``) and witness private keys (C2SP signed-note "Verifier keys").

A vkey names a key, its 4-byte key ID and its type and public key::

    <name>+<8 lowercase hex key ID>+<base64(type byte || public key)>

The base64 part may itself contain ``+``, so the string is split on its first two ``+`` only.
The key ID must be the one the name, type and key give (SHA-256(name || 0x0A || type || key)[:4]),
or the vkey is refused. Types understood here:

* ``0x01`` Ed25519 note signatures (a log's checkpoint key, e.g. Rekor v2);
* ``0x04`` timestamped Ed25519 cosignatures (C2SP tlog-cosignature ``cosignature/v1``);
* ``0x06`` timestamped ML-DSA-44 (sub)tree cosignatures, when ``cryptography`` offers ML-DSA.

A private key for a witness is kept as ``PRIVATE+KEY+<name>+<hex key ID>+base64(type || seed)``
(the transparency-dev/formats convention; the seed is 32 bytes for both Ed25519 and ML-DSA-44).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519

from keyless.errors import InvalidInput
from keyless.formats.note import b64decode_strict

__all__ = [
    "SIG_COSIGNATURE_V1",
    "SIG_ED25519",
    "SIG_MLDSA44_COSIGNATURE",
    "VerifierKey",
    "VkeyError",
    "c2sp_key_id",
]

SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04
SIG_MLDSA44_COSIGNATURE = 0x06

#: raw public-key sizes per type (Ed25519 32 bytes, ML-DSA-44 1312 bytes)
_KEY_SIZES = {SIG_ED25519: 32, SIG_COSIGNATURE_V1: 32, SIG_MLDSA44_COSIGNATURE: 1312}
_PRIVATE_PREFIX = "PRIVATE+KEY+"


class VkeyError(InvalidInput):
    """A vkey or private-key string is malformed or inconsistent; the message names the rule."""


def c2sp_key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || type || public key)[:4] (C2SP signed-note "Signature types")."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key).digest()[
        :4
    ]


def _check_name(name: str) -> None:
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise VkeyError(f"key name {name[:80]!r} is empty or contains a space or '+'")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise VkeyError("key name contains a control character")


def _b64(value: str, what: str) -> bytes:
    return b64decode_strict(value, what, VkeyError)


@dataclass(frozen=True)
class VerifierKey:
    """A parsed vkey: name, signature type and raw public key (the key ID follows from them)."""

    name: str
    sig_type: int
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        size = _KEY_SIZES.get(self.sig_type)
        if size is None:
            raise VkeyError(f"vkey {self.name!r}: unsupported key type {self.sig_type:#04x}")
        if len(self.public_key) != size:
            raise VkeyError(
                f"vkey {self.name!r}: a type {self.sig_type:#04x} key is {size} bytes, "
                f"got {len(self.public_key)}"
            )

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID every signature line of this key carries."""
        return c2sp_key_id(self.name, self.sig_type, self.public_key)

    def encode(self) -> str:
        """``<name>+<hex key ID>+<base64(type || key)>``."""
        b64 = base64.b64encode(bytes([self.sig_type]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{b64}"

    def __str__(self) -> str:
        return self.encode()

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Parse a vkey strictly: the key ID must match the name, type and key."""
        if len(text) > 4096:
            raise VkeyError("vkey is longer than 4096 characters")
        name, sep1, rest = text.partition("+")
        key_id_hex, sep2, b64 = rest.partition("+")
        if not sep1 or not sep2:
            raise VkeyError(f"vkey {text[:80]!r} is not <name>+<key ID>+<key>")
        if len(key_id_hex) != 8 or key_id_hex != key_id_hex.lower():
            raise VkeyError(f"vkey {name[:80]!r}: key ID must be 8 lowercase hex digits")
        try:
            key_id = bytes.fromhex(key_id_hex)
        except ValueError as exc:
            raise VkeyError(f"vkey {name[:80]!r}: key ID is not hex") from exc
        raw = _b64(b64, f"vkey {name[:80]!r} key")
        if not raw:
            raise VkeyError(f"vkey {name[:80]!r} has an empty key")
        vkey = cls(name, raw[0], raw[1:])
        if vkey.key_id != key_id:
            raise VkeyError(
                f"vkey {name[:80]!r}: key ID {key_id_hex} does not match its name and key "
                f"({vkey.key_id.hex()})"
            )
        return vkey

    @classmethod
    def for_ed25519(
        cls, name: str, key: ed25519.Ed25519PublicKey, sig_type: int = SIG_ED25519
    ) -> VerifierKey:
        """The vkey of an Ed25519 key as a note signer (0x01) or a cosigner (0x04)."""
        from cryptography.hazmat.primitives import serialization

        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return cls(name, sig_type, raw)

    def ed25519_key(self) -> ed25519.Ed25519PublicKey:
        """The Ed25519 public key of a 0x01 or 0x04 vkey."""
        if self.sig_type not in (SIG_ED25519, SIG_COSIGNATURE_V1):
            raise VkeyError(f"vkey {self.name!r} is not an Ed25519 key")
        return ed25519.Ed25519PublicKey.from_public_bytes(self.public_key)


@dataclass(frozen=True)
class PrivateKeyText:
    """``PRIVATE+KEY+<name>+<hex key ID>+base64(type || 32-byte seed)``: a cosigner's secret."""

    name: str
    sig_type: int
    seed: bytes

    def encode(self, public_key: bytes) -> str:
        """The text form; ``public_key`` gives the key ID."""
        key_id = c2sp_key_id(self.name, self.sig_type, public_key).hex()
        b64 = base64.b64encode(bytes([self.sig_type]) + self.seed).decode("ascii")
        return f"{_PRIVATE_PREFIX}{self.name}+{key_id}+{b64}"

    @classmethod
    def parse(cls, text: str) -> tuple[PrivateKeyText, bytes]:
        """The key and the 4-byte key ID it claims (the caller checks it against the public key).

        Errors never quote the secret part.
        """
        if not text.startswith(_PRIVATE_PREFIX):
            raise VkeyError("private key does not start with PRIVATE+KEY+")
        name, _s1, rest = text[len(_PRIVATE_PREFIX) :].partition("+")
        key_id_hex, sep, b64 = rest.partition("+")
        if not sep or len(key_id_hex) != 8:
            raise VkeyError("private key is not PRIVATE+KEY+<name>+<key ID>+<key>")
        _check_name(name)
        try:
            key_id = bytes.fromhex(key_id_hex)
        except ValueError as exc:
            raise VkeyError("private key ID is not hex") from exc
        raw = _b64(b64.strip(), "private key")
        if len(raw) != 33 or raw[0] not in (SIG_COSIGNATURE_V1, SIG_MLDSA44_COSIGNATURE):
            raise VkeyError("private key must be a type 0x04 or 0x06 key with a 32-byte seed")
        return cls(name, raw[0], raw[1:]), key_id
