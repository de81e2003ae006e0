"""Log checkpoints (C2SP tlog-checkpoint): the signed tree head every Sigstore log publishes.

The note text is ``<origin>\\n<size>\\n<base64 root>\\n[extension lines]`` (C2SP tlog-checkpoint
"Note text"); it is carried in a signed note (:mod:`keyless.formats.note`) signed by the log's
key (:mod:`keyless.formats.note_keys`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.formats.note import (
    CheckpointError,
    MalformedNoteError,
    NoteSignature,
    SignedNote,
    b64decode_strict,
    check_key_name,
    check_text_chars,
    decode_utf8,
)
from keyless.formats.note_keys import NoteSigner, SignatureVerifier, ecdsa_key_id, verify_note

__all__ = ["Checkpoint", "RFC6962NoteVerifier", "open_checkpoint", "sign_checkpoint"]

#: Digits of the largest uint64 (18446744073709551615): longer size lines cannot be one.
_U64_DIGITS = 20
_SIZE_RE = re.compile(r"(?:0|[1-9][0-9]*)\Z")
_U64_MAX = (1 << 64) - 1


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
        check_text_chars(self.origin, "checkpoint origin")
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
            check_text_chars(ext, "checkpoint extension line")

    def to_text(self) -> bytes:
        """The note text: origin, size, base64 root hash and extension lines, each newline-ended."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii")]
        return ("\n".join([*lines, *self.extensions]) + "\n").encode("utf-8")

    @classmethod
    def from_note(cls, note: bytes) -> Checkpoint:
        """The checkpoint a signed note carries (its signatures are not checked here)."""
        return cls.from_text(SignedNote.parse(note).text)

    @classmethod
    def from_text(cls, text: bytes, *, strict_origin: bool = False) -> Checkpoint:
        """Parse a checkpoint note text strictly.

        Origins with spaces are accepted by default because Rekor v1 names its checkpoints
        ``"<host> - <treeID>"`` (tlog-checkpoint only *recommends* a space-free origin); key names
        in signature lines, in contrast, never contain spaces. ``strict_origin=True`` also rejects
        origins with Unicode spaces or '+', as Rekor v2 and tlog-tiles logs require (protocols.md
        §4: "origin must contain no spaces/+").
        """
        decoded = decode_utf8(text, "checkpoint")
        check_text_chars(decoded, "checkpoint")
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
        root = b64decode_strict(root_line, "checkpoint root hash")
        if len(root) != 32:
            raise MalformedNoteError(f"checkpoint root hash is {len(root)} bytes, expected 32")
        if any(not ext for ext in extensions):
            raise MalformedNoteError("checkpoint has an empty extension line")
        return cls(origin, size, root, tuple(extensions))


class RFC6962NoteVerifier:
    """Verifies static-ct-api checkpoint signatures (C2SP static-ct-api "Checkpoints", type 0x05).

    The signature is ``u64 timestamp || TreeHeadSignature digitally-signed`` (RFC 6962 §3.5 with
    TLS ``DigitallySigned``: u8 hash, u8 signature algorithm, u16 length, signature) over
    ``version 0 || signature_type tree_hash(1) || timestamp || tree_size || root_hash`` taken
    from the note text, which must have no extension lines.
    """

    def __init__(self, name: str, public_key: ec.EllipticCurvePublicKey) -> None:
        check_key_name(name)
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


def sign_checkpoint(cp: Checkpoint, signer: NoteSigner) -> bytes:
    """The full signed note for a checkpoint, as served at ``<prefix>/checkpoint``."""
    text = cp.to_text()
    return SignedNote(text, (signer.sign(text),)).to_bytes()


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
