"""Signed notes and log checkpoints (C2SP signed-note, tlog-checkpoint, tlog-cosignature).

A checkpoint is the signed tree head every Sigstore log publishes: the note text
``<origin>\\n<size>\\n<base64 root>\\n[extension lines]`` (C2SP tlog-checkpoint "Note text"),
followed by a blank line and one or more signature lines ``— <key name> base64(key hint || sig)``
(C2SP signed-note "Format").

Two key conventions are in use in Sigstore (protocols.md §3.2, §4; interop.md §5 items 8-9):

* **Rekor v1 / ECDSA** (``sigstore/rekor pkg/util/signed_note.go``; C2SP signature type 0x02):
  key ID = SHA-256(SPKI DER), hint = its first 4 bytes, ECDSA over SHA-256 of the note text. The
  checkpoint origin is ``"<host> - <treeID>"`` while the signer name is ``<host>``.
* **Rekor v2 / Ed25519** (C2SP signed-note "Ed25519 signatures", type 0x01):
  key ID = SHA-256(name || 0x0A || 0x01 || raw 32-byte key); the origin equals the signer name.

Witness cosignatures (C2SP tlog-cosignature, Ed25519 type 0x04) are kept when parsing and can be
verified with :class:`CosignatureVerifier`. Parsing is strict: anything the specs forbid is
rejected with :class:`MalformedNoteError` rather than silently normalised.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keyless.errors import ConfigError, InvalidInput, VerificationError
from keyless.keys import KeySigner, PublicKey, hash_for_curve, spki_der

__all__ = [
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "Checkpoint",
    "CheckpointError",
    "CosignatureVerifier",
    "MalformedNoteError",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "RFC6962NoteVerifier",
    "SignatureVerifier",
    "SignedNote",
    "cosign",
    "ecdsa_key_id",
    "ed25519_key_id",
    "name_from_base_url",
    "open_checkpoint",
    "sign_checkpoint",
    "verify_note",
]

MAX_SIGNATURES = 100
"""Signature lines accepted per note (C2SP signed-note: verifiers MUST accept at least 16)."""

MAX_NOTE_SIZE = 1 << 20
"""An upper bound on a whole signed note, so a hostile note cannot exhaust memory."""

_DASH = "\u2014 "  # em dash and space start every signature line (C2SP signed-note "Format")
_SIG_ED25519 = 0x01
_SIG_COSIGNATURE_V1 = 0x04
#: Digits of the largest uint64 (18446744073709551615): longer size lines cannot be one.
_U64_DIGITS = 20
_SIZE_RE = re.compile(r"(?:0|[1-9][0-9]*)\Z")
#: ASCII control characters other than newline (forbidden in notes, C2SP signed-note "Format").
_CONTROL_RE = re.compile("[\x00-\x09\x0b-\x1f]")
_U64_MAX = (1 << 64) - 1


class CheckpointError(VerificationError):
    """A signed note or checkpoint failed verification (no trusted signature, bad signature…)."""


class MalformedNoteError(CheckpointError, InvalidInput):
    """The bytes are not a well-formed signed note / checkpoint; the message names the rule."""


def _b64decode_strict(value: str, what: str) -> bytes:
    """Standard base64 (RFC 4648 §4) with padding, and nothing that re-encodes differently."""
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise MalformedNoteError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != value:
        raise MalformedNoteError(f"{what} is not canonical base64")
    return raw


def _check_key_name(name: str) -> None:
    """Key names are non-empty, without Unicode spaces or '+' (C2SP signed-note "Format")."""
    if not name:
        raise MalformedNoteError("signature key name is empty")
    if "+" in name or any(ch.isspace() for ch in name):
        raise MalformedNoteError(f"signature key name {name!r} contains a space or '+'")


def _check_text_chars(text: str, what: str) -> None:
    """UTF-8 (already decoded) with no ASCII control characters but newline (C2SP signed-note)."""
    found = _CONTROL_RE.search(text)
    if found is not None:
        raise MalformedNoteError(f"{what} contains control character {ord(found.group()):#04x}")


def _decode_utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedNoteError(f"{what} is not valid UTF-8") from exc


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key hint (key ID prefix) and signature bytes."""

    name: str
    key_hint: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if len(self.key_hint) != 4:
            raise MalformedNoteError(f"key hint must be 4 bytes, got {len(self.key_hint)}")
        if not self.signature:
            raise MalformedNoteError(f"signature line of {self.name!r} has no signature bytes")

    def to_line(self) -> bytes:
        """``— <name> base64(hint || signature)\\n``."""
        b64 = base64.b64encode(self.key_hint + self.signature).decode("ascii")
        return f"{_DASH}{self.name} {b64}\n".encode()

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        """Parse one signature line without its newline."""
        if not line.startswith(_DASH):
            raise MalformedNoteError("signature line does not start with an em dash and a space")
        rest = line[len(_DASH) :]
        name, sep, b64 = rest.rpartition(" ")
        if not sep:
            raise MalformedNoteError("signature line has no space between key name and signature")
        _check_key_name(name)
        raw = _b64decode_strict(b64, f"signature of {name!r}")
        if len(raw) < 5:
            raise MalformedNoteError(f"signature of {name!r} is shorter than 5 bytes")
        return cls(name, raw[:4], raw[4:])


@dataclass(frozen=True)
class SignedNote:
    """A note text (ending in a newline) and its signature lines, in their original order."""

    text: bytes
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        decoded = _decode_utf8(self.text, "note text")
        _check_text_chars(decoded, "note text")
        if not decoded.endswith("\n"):
            raise MalformedNoteError("note text does not end in a newline")
        if len(self.signatures) > MAX_SIGNATURES:
            raise MalformedNoteError(f"note has more than {MAX_SIGNATURES} signatures")

    @classmethod
    def parse(cls, envelope: bytes | str) -> SignedNote:
        """Parse a signed note strictly (C2SP signed-note "Format").

        The text runs up to and including the newline before the *last* blank line; at least one
        signature line must follow, each ending in a newline.
        """
        if isinstance(envelope, str):
            try:
                envelope = envelope.encode("utf-8")
            except UnicodeEncodeError as exc:  # a lone surrogate, as JSON can carry it
                raise MalformedNoteError("signed note is not valid Unicode") from exc
        if len(envelope) > MAX_NOTE_SIZE:
            raise MalformedNoteError(f"signed note is larger than {MAX_NOTE_SIZE} bytes")
        message = _decode_utf8(envelope, "signed note")
        _check_text_chars(message, "signed note")
        if not message.endswith("\n"):
            raise MalformedNoteError("signed note does not end in a newline")
        split = message.rfind("\n\n")
        if split < 0:
            raise MalformedNoteError("signed note has no blank line before its signatures")
        text, block = message[: split + 1], message[split + 2 :]
        if not block:
            raise MalformedNoteError("signed note has no signature lines")
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise MalformedNoteError(f"note has more than {MAX_SIGNATURES} signatures")
        return cls(text.encode("utf-8"), tuple(NoteSignature.from_line(li) for li in lines))

    def to_bytes(self) -> bytes:
        """The note as served: text, blank line, signature lines."""
        if not self.signatures:
            raise MalformedNoteError("a signed note needs at least one signature")
        return self.text + b"\n" + b"".join(s.to_line() for s in self.signatures)

    def with_signature(self, signature: NoteSignature) -> SignedNote:
        """The same note with one more signature line appended (e.g. a witness cosignature)."""
        return SignedNote(self.text, (*self.signatures, signature))


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head as a note text (C2SP tlog-checkpoint "Note text")."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin:
            raise MalformedNoteError("checkpoint origin is empty")
        if "\n" in self.origin:
            raise MalformedNoteError("checkpoint origin contains a newline")
        _check_text_chars(self.origin, "checkpoint origin")
        if not 0 <= self.size <= _U64_MAX:
            raise MalformedNoteError(f"checkpoint tree size {self.size} is not a uint64")
        if len(self.root_hash) != 32:
            raise MalformedNoteError(
                f"checkpoint root hash must be 32 bytes, got {len(self.root_hash)}"
            )
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise MalformedNoteError(
                    "checkpoint extension lines must be non-empty single lines"
                )
            _check_text_chars(ext, "checkpoint extension line")

    def to_text(self) -> bytes:
        """The note text: origin, size, base64 root hash and extension lines, each newline-ended."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii")]
        return ("\n".join([*lines, *self.extensions]) + "\n").encode("utf-8")

    @classmethod
    def from_text(cls, text: bytes, *, strict_origin: bool = False) -> Checkpoint:
        """Parse a checkpoint note text strictly.

        Origins with spaces are accepted by default because Rekor v1 names its checkpoints
        ``"<host> - <treeID>"`` (tlog-checkpoint only *recommends* a space-free origin); key names
        in signature lines, in contrast, never contain spaces. ``strict_origin=True`` also rejects
        origins with Unicode spaces or '+', as Rekor v2 and tlog-tiles logs require (protocols.md
        §4: "origin must contain no spaces/+").
        """
        decoded = _decode_utf8(text, "checkpoint")
        _check_text_chars(decoded, "checkpoint")
        if not decoded.endswith("\n"):
            raise MalformedNoteError("checkpoint text does not end in a newline")
        lines = decoded[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedNoteError(
                f"checkpoint has {len(lines)} lines; origin, size and root hash are required"
            )
        origin, size_line, root_line, *extensions = lines
        if not origin:
            raise MalformedNoteError("checkpoint origin line is empty")
        if strict_origin and ("+" in origin or any(ch.isspace() for ch in origin)):
            raise MalformedNoteError(f"checkpoint origin {origin[:80]!r} contains a space or '+'")
        if not _SIZE_RE.match(size_line):
            raise MalformedNoteError(
                f"checkpoint size line {size_line[:40]!r} is not a decimal without leading zeros"
            )
        if len(size_line) > _U64_DIGITS:
            raise MalformedNoteError(f"checkpoint tree size {size_line[:40]}… is not a uint64")
        size = int(size_line)
        if size > _U64_MAX:
            raise MalformedNoteError("checkpoint tree size does not fit in 64 bits")
        root = _b64decode_strict(root_line, "checkpoint root hash")
        if len(root) != 32:
            raise MalformedNoteError(f"checkpoint root hash is {len(root)} bytes, expected 32")
        if any(not ext for ext in extensions):
            raise MalformedNoteError("checkpoint has an empty extension line")
        return cls(origin, size, root, tuple(extensions))


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
        _check_key_name(name)
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


def sign_checkpoint(cp: Checkpoint, signer: NoteSigner) -> bytes:
    """The full signed note for a checkpoint, as served at ``<prefix>/checkpoint``."""
    text = cp.to_text()
    return SignedNote(text, (signer.sign(text),)).to_bytes()


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
        _check_key_name(name)
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
        _check_key_name(name)
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


class RFC6962NoteVerifier:
    """Verifies static-ct-api checkpoint signatures (C2SP static-ct-api "Checkpoints", type 0x05).

    The signature is ``u64 timestamp || TreeHeadSignature digitally-signed`` (RFC 6962 §3.5 with
    TLS ``DigitallySigned``: u8 hash, u8 signature algorithm, u16 length, signature) over
    ``version 0 || signature_type tree_hash(1) || timestamp || tree_size || root_hash`` taken
    from the note text, which must have no extension lines.
    """

    def __init__(self, name: str, public_key: ec.EllipticCurvePublicKey) -> None:
        _check_key_name(name)
        self.name = name
        self.public_key = public_key
        self.log_id = ecdsa_key_id(public_key)  # RFC 6962 §3.2 LogID = SHA-256(SPKI)
        self.key_id = hashlib.sha256(name.encode("utf-8") + b"\n\x05" + self.log_id).digest()

    @property
    def key_hint(self) -> bytes:
        """The first 4 bytes of SHA-256(name || 0x0A || 0x05 || LogID)."""
        return self.key_id[:4]

    @staticmethod
    def timestamp(signature: NoteSignature) -> int:
        """The STH timestamp (milliseconds) an RFC6962NoteSignature carries."""
        if len(signature.signature) < 12:
            raise MalformedNoteError("an RFC6962NoteSignature is at least 12 bytes")
        return int.from_bytes(signature.signature[:8], "big")

    def check(self, text: bytes, signature: bytes) -> bool:
        """Check the DigitallySigned TreeHeadSignature against the size and root of ``text``."""
        try:
            cp = Checkpoint.from_text(text)
        except MalformedNoteError:
            return False
        if cp.extensions or len(signature) < 12:
            return False
        timestamp = signature[:8]
        hash_alg, sig_alg = signature[8], signature[9]
        length = int.from_bytes(signature[10:12], "big")
        der = signature[12:]
        if (hash_alg, sig_alg) != (4, 3) or length != len(
            der
        ):  # sha256, ecdsa (RFC 5246 §7.4.1.4.1)
            return False
        signed = b"\x00\x01" + timestamp + cp.size.to_bytes(8, "big") + cp.root_hash
        try:
            self.public_key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
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


def open_checkpoint(
    envelope: bytes | str,
    verifier: SignatureVerifier | Sequence[SignatureVerifier],
    *,
    origin: str | None = None,
    strict_origin: bool = False,
) -> Checkpoint:
    """Parse, verify and decode a signed checkpoint in one step.

    ``origin``, when given, must equal the checkpoint's origin line (a log's checkpoints must not
    be accepted for another log; for Rekor v1 it is ``"<host> - <treeID>"``). ``strict_origin``
    is passed to :meth:`Checkpoint.from_text`.
    """
    note = SignedNote.parse(envelope)
    cp = Checkpoint.from_text(
        note.text, strict_origin=strict_origin
    )  # malformed bodies are reported as such, not as bad sigs
    verify_note(note, [verifier] if not isinstance(verifier, Sequence) else verifier)
    if origin is not None and cp.origin != origin:
        raise CheckpointError(f"checkpoint origin {cp.origin!r} is not the expected {origin!r}")
    return cp
