"""The keys that sign and verify signed notes and checkpoints (C2SP signed-note, tlog-cosignature).

Two key conventions are in use in Sigstore (protocols.md §3.2, §4; interop.md §5 items 8-9):

* **Rekor v1 / ECDSA** (``sigstore/rekor pkg/util/signed_note.go``; C2SP signature type 0x02):
  key ID = SHA-256(SPKI DER), hint = its first 4 bytes, ECDSA over SHA-256 of the note text. The
  checkpoint origin is ``"<host> - <treeID>"`` while the signer name is ``<host>``.
* **Rekor v2 / Ed25519** (C2SP signed-note "Ed25519 signatures", type 0x01):
  key ID = SHA-256(name || 0x0A || 0x01 || raw 32-byte key); the origin equals the signer name.

Witness cosignatures (C2SP tlog-cosignature, Ed25519 type 0x04) are made with :func:`cosign` and
verified with :class:`CosignatureVerifier`; static-ct-api checkpoints (type 0x05) with
:class:`keyless.formats.checkpoint.RFC6962NoteVerifier`, which reads the checkpoint body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keyless.errors import ConfigError, InvalidInput
from keyless.formats.note import (
    CheckpointError,
    MalformedNoteError,
    NoteSignature,
    SignedNote,
    check_key_name,
)
from keyless.keys import KeySigner, PublicKey, hash_for_curve, spki_der

__all__ = [
    "CosignatureVerifier",
    "NoteSigner",
    "NoteVerifier",
    "SignatureVerifier",
    "cosign",
    "ecdsa_key_id",
    "ed25519_key_id",
    "name_from_base_url",
    "verify_note",
]

_SIG_ED25519 = 0x01
_SIG_COSIGNATURE_V1 = 0x04


# --- key IDs ---------------------------------------------------------------------------------


def _raw_ed25519(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ed25519_key_id(name: str, key: ed25519.Ed25519PublicKey, sig_type: int = _SIG_ED25519) -> bytes:
    """SHA-256(name || 0x0A || type || raw key) — the full C2SP key ID (Rekor v2 ``logId``)."""
    return hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([sig_type]) + _raw_ed25519(key)
    ).digest()


def ecdsa_key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    """SHA-256(SPKI DER) — the Rekor v1 ``logID`` and C2SP type 0x02 key ID."""
    return hashlib.sha256(spki_der(key)).digest()


def name_from_base_url(base_url: str) -> str:
    """The note signer name a log publishes under ``base_url``: host[:port][/path], no scheme.

    ``https://rekor.sigstore.dev`` → ``rekor.sigstore.dev`` (Rekor v1 signer name),
    ``http://localhost:3000/rekor`` → ``localhost:3000/rekor`` (Rekor v2 origin); interop.md §5.8.
    """
    parts = urlsplit(base_url)
    if not parts.netloc:
        raise ConfigError(f"log base URL {base_url!r} has no host")
    return parts.netloc + parts.path.rstrip("/")


# --- signing ---------------------------------------------------------------------------------


class NoteSigner:
    """Signs note texts with a :class:`keyless.keys.KeySigner` under a key name."""

    def __init__(self, name: str, signer: KeySigner, key_id: bytes) -> None:
        check_key_name(name)
        if len(key_id) < 4:
            raise ConfigError("note key ID must be at least 4 bytes")
        self.name = name
        self.signer = signer
        self.key_id = key_id

    @property
    def key_hint(self) -> bytes:
        """The first 4 bytes of the key ID, written in front of every signature."""
        return self.key_id[:4]

    @classmethod
    def ed25519(cls, name: str, signer: KeySigner) -> NoteSigner:
        """A C2SP Ed25519 note signer (Rekor v2 checkpoints)."""
        key = signer.public_key()
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ConfigError(f"note signer {name!r}: expected an Ed25519 key")
        return cls(name, signer, ed25519_key_id(name, key))

    @classmethod
    def ecdsa(cls, name: str, signer: KeySigner) -> NoteSigner:
        """A Rekor v1 style ECDSA note signer (key ID = SHA-256(SPKI))."""
        key = signer.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ConfigError(f"note signer {name!r}: expected an ECDSA key")
        return cls(name, signer, ecdsa_key_id(key))

    @classmethod
    def for_key(cls, name: str, signer: KeySigner) -> NoteSigner:
        """Pick the convention from the key type (Ed25519 → C2SP, ECDSA → Rekor v1)."""
        if isinstance(signer.public_key(), ed25519.Ed25519PublicKey):
            return cls.ed25519(name, signer)
        return cls.ecdsa(name, signer)

    def verifier(self) -> NoteVerifier:
        """The matching verifier (for self-checks and tests)."""
        return NoteVerifier(self.name, self.signer.public_key(), key_id=self.key_id)

    def sign(self, text: bytes) -> NoteSignature:
        """Sign a note text (which must already be a valid note text)."""
        SignedNote(text, ())  # validates the text
        return NoteSignature(self.name, self.key_hint, self.signer.sign(text))


def cosign(text: bytes, name: str, key: ed25519.Ed25519PrivateKey, timestamp: int) -> NoteSignature:
    """A C2SP tlog-cosignature/v1 line over a checkpoint text (for witnesses and tests)."""
    if not 0 <= timestamp < 1 << 63:
        raise InvalidInput("cosignature timestamp must be in [0, 2^63)")
    message = f"cosignature/v1\ntime {timestamp}\n".encode() + text
    sig = timestamp.to_bytes(8, "big") + key.sign(message)
    hint = ed25519_key_id(name, key.public_key(), _SIG_COSIGNATURE_V1)[:4]
    return NoteSignature(name, hint, sig)


# --- verification ----------------------------------------------------------------------------


class SignatureVerifier(Protocol):
    """Something that knows one (name, key ID) and can check its signatures over a note text."""

    name: str

    @property
    def key_hint(self) -> bytes:
        """The 4-byte key ID prefix this key's signature lines carry."""
        ...

    def check(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (after the key hint) is valid over ``text``."""
        ...


class NoteVerifier:
    """Verifies a log's note signatures with its public key (Ed25519 or ECDSA)."""

    def __init__(self, name: str, public_key: PublicKey, key_id: bytes | None = None) -> None:
        check_key_name(name)
        self.name = name
        self.public_key = public_key
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            computed = ed25519_key_id(name, public_key)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            computed = ecdsa_key_id(public_key)
        else:
            raise ConfigError(f"note verifier {name!r}: only Ed25519 and ECDSA keys are supported")
        self.key_id = computed if key_id is None else key_id
        if len(self.key_id) < 4:
            raise ConfigError("note key ID must be at least 4 bytes")

    @property
    def key_hint(self) -> bytes:
        """The first 4 bytes of the key ID."""
        return self.key_id[:4]

    @classmethod
    def from_trusted_log(
        cls, base_url: str, public_key_der: bytes, log_id: bytes | None = None
    ) -> NoteVerifier:
        """A verifier for a trusted-root ``tlogs[]`` entry (protobuf-specs TransparencyLogInstance).

        The signer name is derived from ``baseUrl`` (:func:`name_from_base_url`), the key ID from
        the key type; when the trusted root's ``logId`` is given it must equal that key ID, as
        sigstore-js requires (interop.md §5 items 8-9), or :class:`ConfigError` is raised.
        """
        try:
            key = serialization.load_der_public_key(public_key_der)
        except ValueError as exc:
            raise ConfigError(f"log {base_url}: unreadable public key: {exc}") from exc
        if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
            raise ConfigError(f"log {base_url}: only Ed25519 and ECDSA log keys sign notes")
        verifier = cls(name_from_base_url(base_url), key)
        if log_id is not None and log_id != verifier.key_id:
            raise ConfigError(
                f"log {base_url}: logId {log_id.hex()} is not the note key ID "
                f"{verifier.key_id.hex()} of its key under name {verifier.name!r}"
            )
        return verifier

    def check(self, text: bytes, signature: bytes) -> bool:
        """Check one signature over the note text."""
        key = self.public_key
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, text)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, text, ec.ECDSA(hash_for_curve(key.curve)))
            else:  # pragma: no cover - excluded by __init__
                return False
        except InvalidSignature:
            return False
        return True

    def verify(self, note: SignedNote) -> NoteSignature:
        """The valid signature line of this key; raises :class:`CheckpointError` if there is none.

        Lines of other keys (witnesses, rotated keys) are ignored wherever they appear; a line
        that carries this key's name and hint but does not verify rejects the note
        (C2SP signed-note "Signatures").
        """
        return verify_note(note, [self])[0]


class CosignatureVerifier:
    """Verifies C2SP tlog-cosignature/v1 (Ed25519, type 0x04) lines of a witness."""

    def __init__(self, name: str, public_key: ed25519.Ed25519PublicKey) -> None:
        check_key_name(name)
        self.name = name
        self.public_key = public_key
        self.key_id = ed25519_key_id(name, public_key, _SIG_COSIGNATURE_V1)

    @property
    def key_hint(self) -> bytes:
        """The first 4 bytes of the cosigner key ID."""
        return self.key_id[:4]

    @staticmethod
    def timestamp(signature: NoteSignature) -> int:
        """The POSIX time a cosignature line claims (its first 8 bytes, big-endian)."""
        if len(signature.signature) != 72:
            raise MalformedNoteError("an Ed25519 cosignature is 8 + 64 bytes")
        return int.from_bytes(signature.signature[:8], "big")

    def check(self, text: bytes, signature: bytes) -> bool:
        """Check a ``u64 timestamp || Ed25519 signature`` over the cosignature/v1 message."""
        if len(signature) != 72:
            return False
        ts = int.from_bytes(signature[:8], "big")
        if ts >= 1 << 63:
            return False
        message = f"cosignature/v1\ntime {ts}\n".encode() + text
        try:
            self.public_key.verify(signature[8:], message)
        except InvalidSignature:
            return False
        return True


def verify_note(note: SignedNote, verifiers: Iterable[SignatureVerifier]) -> list[NoteSignature]:
    """The signature lines verified by known keys, in note order (C2SP signed-note "Signatures").

    A line is from a known key when both its name and key hint match a verifier; lines from
    unknown keys are ignored. Raises :class:`CheckpointError` if a known key's line fails to
    verify or if no known key signed the note.
    """
    known = {(v.name, bytes(v.key_hint)): v for v in verifiers}
    if not known:
        raise ConfigError("no note verification keys given")
    good: list[NoteSignature] = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_hint))
        if verifier is None:
            continue
        if not verifier.check(note.text, sig.signature):
            raise CheckpointError(f"signature of {sig.name!r} over the note does not verify")
        good.append(sig)
    if not good:
        names = ", ".join(sorted(f"{n} ({h.hex()})" for n, h in known))
        raise CheckpointError(f"note carries no signature from a trusted key: {names}")
    return good
