"""Witness cosignatures over checkpoints (C2SP tlog-cosignature), signing and verifying.

A cosignature line is an ordinary signed-note line (:class:`keyless.formats.note_keys.
NoteSignature`) whose signature bytes are ``u64 timestamp (big-endian) || signature``:

* **Ed25519, type 0x04** (``cosignature/v1``): the signed message is
  ``"cosignature/v1\\ntime <timestamp>\\n"`` followed by the whole checkpoint text (extension
  lines included). Signing and the Ed25519 verifier live in :mod:`keyless.formats.note_keys`
  (:func:`~keyless.formats.note_keys.cosign`, :class:`~keyless.formats.note_keys.
  CosignatureVerifier`); :class:`Ed25519Cosigner` wraps them with a key name.
* **ML-DSA-44, type 0x06** (``subtree/v1``): the signed message is the binary struct
  ``"subtree/v1\\n\\0" || u8 len || cosigner name || u64 timestamp || u8 len || origin ||
  u64 start || u64 end || hash[32]`` (start 0 and end = tree size for a checkpoint), signed with
  pure ML-DSA and an empty context. It does not cover extension lines, so checkpoints with
  extension lines are neither signed nor accepted with it. Available only when the installed
  ``cryptography`` offers ML-DSA (:func:`mldsa_supported`).

The timestamp is POSIX seconds, at most 2^63 - 1; a witness never signs with timestamp 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from keyless.errors import ConfigError, InvalidInput
from keyless.formats.checkpoint import Checkpoint
from keyless.formats.note import MalformedNoteError, NoteSignature
from keyless.formats.note_keys import CosignatureVerifier, SignatureVerifier, cosign
from keyless.formats.vkey import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    SIG_MLDSA44_COSIGNATURE,
    VerifierKey,
    VkeyError,
    c2sp_key_id,
)

__all__ = [
    "MLDSA44_SIGNATURE_SIZE",
    "Cosigner",
    "Ed25519Cosigner",
    "MLDSA44CosignatureVerifier",
    "MLDSA44Cosigner",
    "cosignature_timestamp",
    "mldsa_supported",
    "subtree_message",
    "verifier_for_vkey",
]

MLDSA44_SIGNATURE_SIZE = 2420
_SUBTREE_LABEL = b"subtree/v1\n\x00"
_TS_LIMIT = 1 << 63


def mldsa_supported() -> bool:
    """Whether this ``cryptography`` build can sign and verify ML-DSA-44."""
    try:
        from cryptography.hazmat.primitives.asymmetric import mldsa

        mldsa.MLDSA44PrivateKey.from_seed_bytes(bytes(32))
    except (ImportError, UnsupportedAlgorithm, AttributeError):
        return False
    return True


def cosignature_timestamp(signature: NoteSignature) -> int:
    """The POSIX time a cosignature line claims (its first 8 bytes, big-endian)."""
    if len(signature.signature) < 8:
        raise MalformedNoteError(f"cosignature of {signature.name!r} is shorter than 8 bytes")
    return int.from_bytes(signature.signature[:8], "big")


def subtree_message(
    cosigner_name: str, timestamp: int, origin: str, *, start: int, end: int, root: bytes
) -> bytes:
    """The ``subtree/v1`` struct an ML-DSA-44 cosignature signs (C2SP tlog-cosignature)."""
    name = cosigner_name.encode("utf-8")
    org = origin.encode("utf-8")
    if not 1 <= len(name) <= 255 or not 1 <= len(org) <= 255:
        raise InvalidInput("cosigner name and origin must be 1..255 bytes for ML-DSA-44")
    if len(root) != 32 or not 0 <= timestamp < _TS_LIMIT:
        raise InvalidInput("bad subtree hash or timestamp")
    return (
        _SUBTREE_LABEL
        + bytes([len(name)]) + name
        + timestamp.to_bytes(8, "big")
        + bytes([len(org)]) + org
        + start.to_bytes(8, "big")
        + end.to_bytes(8, "big")
        + root
    )


class Cosigner(Protocol):
    """A witness key: its vkey and how it cosigns a checkpoint text at a time."""

    name: str

    @property
    def vkey(self) -> VerifierKey: ...

    def cosign(self, text: bytes, timestamp: int) -> NoteSignature: ...

    def seed(self) -> bytes: ...


class Ed25519Cosigner:
    """Cosigns with an Ed25519 key as ``cosignature/v1`` (type 0x04)."""

    def __init__(self, name: str, key: ed25519.Ed25519PrivateKey) -> None:
        self.name = name
        self._key = key
        self.vkey = VerifierKey.for_ed25519(name, key.public_key(), SIG_COSIGNATURE_V1)

    def cosign(self, text: bytes, timestamp: int) -> NoteSignature:
        """The cosignature line over a checkpoint text."""
        if timestamp <= 0:
            raise InvalidInput("a witness cosignature needs a positive timestamp")
        return cosign(text, self.name, self._key, timestamp)

    def seed(self) -> bytes:
        """The 32-byte private seed (for the witness key file only)."""
        return self._key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )


class MLDSA44Cosigner:
    """Cosigns with an ML-DSA-44 key as a ``subtree/v1`` cosignature over [0, size)."""

    def __init__(self, name: str, seed: bytes) -> None:
        from cryptography.hazmat.primitives.asymmetric import mldsa

        if len(seed) != 32:
            raise ConfigError("an ML-DSA-44 seed is 32 bytes")
        self.name = name
        self._seed = seed
        self._key: Any = mldsa.MLDSA44PrivateKey.from_seed_bytes(seed)
        public = self._key.public_key().public_bytes_raw()
        self.vkey = VerifierKey(name, SIG_MLDSA44_COSIGNATURE, public)

    def cosign(self, text: bytes, timestamp: int) -> NoteSignature:
        """The ML-DSA-44 cosignature line over a checkpoint text (no extension lines)."""
        cp = Checkpoint.from_text(text)
        if cp.extensions:
            raise InvalidInput("ML-DSA-44 cosignatures do not cover extension lines")
        if timestamp <= 0:
            raise InvalidInput("a witness cosignature needs a positive timestamp")
        message = subtree_message(
            self.name, timestamp, cp.origin, start=0, end=cp.size, root=cp.root_hash
        )
        signature: bytes = self._key.sign(message)
        return NoteSignature(self.name, self.vkey.key_id, timestamp.to_bytes(8, "big") + signature)

    def seed(self) -> bytes:
        """The 32-byte private seed (for the witness key file only)."""
        return self._seed


class MLDSA44CosignatureVerifier:
    """Verifies ``subtree/v1`` ML-DSA-44 cosignatures of checkpoints (type 0x06)."""

    def __init__(self, name: str, public_key: bytes) -> None:
        from cryptography.hazmat.primitives.asymmetric import mldsa

        self.name = name
        self._key: Any = mldsa.MLDSA44PublicKey.from_public_bytes(public_key)
        self.key_id = c2sp_key_id(name, SIG_MLDSA44_COSIGNATURE, public_key)

    @property
    def key_hint(self) -> bytes:
        """The 4-byte key ID."""
        return self.key_id

    def check(self, text: bytes, signature: bytes) -> bool:
        """Check ``u64 timestamp || ML-DSA-44 signature`` against the checkpoint in ``text``."""
        if len(signature) != 8 + MLDSA44_SIGNATURE_SIZE:
            return False
        try:
            cp = Checkpoint.from_text(text)
        except MalformedNoteError:
            return False
        timestamp = int.from_bytes(signature[:8], "big")
        if cp.extensions or timestamp >= _TS_LIMIT:
            return False
        try:
            message = subtree_message(
                self.name, timestamp, cp.origin, start=0, end=cp.size, root=cp.root_hash
            )
            self._key.verify(signature[8:], message)
        except (InvalidSignature, InvalidInput):
            return False
        return True


def verifier_for_vkey(vkey: VerifierKey) -> SignatureVerifier:
    """The note verifier of a vkey: log key (0x01) or witness cosigner (0x04, 0x06)."""
    if vkey.sig_type == SIG_COSIGNATURE_V1:
        return CosignatureVerifier(vkey.name, vkey.ed25519_key())
    if vkey.sig_type == SIG_ED25519:
        from keyless.formats.note_keys import NoteVerifier

        return NoteVerifier(vkey.name, vkey.ed25519_key())
    if vkey.sig_type == SIG_MLDSA44_COSIGNATURE:
        if not mldsa_supported():
            raise VkeyError(
                f"vkey {vkey.name!r} is ML-DSA-44, which this cryptography build does not support"
            )
        return MLDSA44CosignatureVerifier(vkey.name, vkey.public_key)
    raise VkeyError(f"vkey {vkey.name!r}: unsupported type {vkey.sig_type:#04x}")


def cosigners_verifiers(vkeys: Sequence[VerifierKey]) -> list[SignatureVerifier]:
    """Verifiers for several vkeys."""
    return [verifier_for_vkey(v) for v in vkeys]
