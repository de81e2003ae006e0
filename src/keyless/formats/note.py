"""Signed notes (C2SP signed-note): a note text followed by signature lines.

A signed note is the note text, a blank line and one or more signature lines
``— <key name> base64(key hint || sig)`` (C2SP signed-note "Format"). Parsing is strict: anything
the spec forbids is rejected with :class:`MalformedNoteError` rather than silently normalised.
The text of a log's note is a checkpoint (:mod:`keyless.formats.checkpoint`); the keys that sign
and verify notes are in :mod:`keyless.formats.note_keys`.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from keyless.errors import InvalidInput, VerificationError

__all__ = [
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "CheckpointError",
    "MalformedNoteError",
    "NoteSignature",
    "SignedNote",
]

MAX_SIGNATURES = 100
"""Signature lines accepted per note (C2SP signed-note: verifiers MUST accept at least 16)."""

MAX_NOTE_SIZE = 1 << 20
"""An upper bound on a whole signed note, so a hostile note cannot exhaust memory."""

_DASH = "\u2014 "  # em dash and space start every signature line (C2SP signed-note "Format")
#: ASCII control characters other than newline (forbidden in notes, C2SP signed-note "Format").
_CONTROL_RE = re.compile("[\x00-\x09\x0b-\x1f]")


class CheckpointError(VerificationError):
    """A signed note or checkpoint failed verification (no trusted signature, bad signature…)."""


class MalformedNoteError(CheckpointError, InvalidInput):
    """The bytes are not a well-formed signed note / checkpoint; the message names the rule."""


def b64decode_strict(
    value: str, what: str, error: type[InvalidInput] = MalformedNoteError
) -> bytes:
    """Standard base64 (RFC 4648 §4) with padding, and nothing that re-encodes differently;
    else ``error`` naming ``what``."""
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise error(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != value:
        raise error(f"{what} is not canonical base64")
    return raw


def check_key_name(name: str) -> None:
    """Key names are non-empty, without Unicode spaces or '+' (C2SP signed-note "Format")."""
    if not name:
        raise MalformedNoteError("signature key name is empty")
    if "+" in name or any(ch.isspace() for ch in name):
        raise MalformedNoteError(f"signature key name {name!r} contains a space or '+'")


def check_text_chars(text: str, what: str) -> None:
    """UTF-8 (already decoded) with no ASCII control characters but newline (C2SP signed-note)."""
    found = _CONTROL_RE.search(text)
    if found is not None:
        raise MalformedNoteError(f"{what} contains control character {ord(found.group()):#04x}")


def decode_utf8(data: bytes, what: str) -> str:
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
        check_key_name(self.name)
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
        check_key_name(name)
        raw = b64decode_strict(b64, f"signature of {name!r}")
        if len(raw) < 5:
            raise MalformedNoteError(f"signature of {name!r} is shorter than 5 bytes")
        return cls(name, raw[:4], raw[4:])


@dataclass(frozen=True)
class SignedNote:
    """A note text (ending in a newline) and its signature lines, in their original order."""

    text: bytes
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        decoded = decode_utf8(self.text, "note text")
        check_text_chars(decoded, "note text")
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
        message = decode_utf8(envelope, "signed note")
        check_text_chars(message, "signed note")
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
