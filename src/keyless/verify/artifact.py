"""What was signed: an artifact given as bytes, a file, or a ``sha256:<hex>`` digest.

The conformance protocol (interop.md §4.1) passes ``FILE_OR_DIGEST``; the input is a digest only
if it has the ``sha256:`` prefix, 64 lowercase hex digits, and is not an existing path. Message
signatures are verified from the digest alone (protocols.md §9 step 7, interop.md §5 item 15);
DSSE statements are matched by their subjects' ``digest.sha256``.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from keyless.errors import InvalidInput

__all__ = ["Artifact"]

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Artifact:
    """A SHA-256 digest of the signed bytes (and, when known, where they came from)."""

    sha256: bytes
    name: str = ""

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "") -> Artifact:
        return cls(hashlib.sha256(data).digest(), name)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> Artifact:
        """Hash a file in chunks (artifacts may be large)."""
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
        except OSError as exc:
            raise InvalidInput(f"cannot read artifact {os.fspath(path)!r}: {exc.strerror}") from exc
        return cls(h.digest(), os.fspath(path))

    @classmethod
    def from_digest(cls, text: str) -> Artifact:
        """``sha256:<64 lowercase hex>``."""
        if not _DIGEST.fullmatch(text):
            raise InvalidInput(f"{text!r} is not a sha256:<64 hex digits> digest")
        return cls(bytes.fromhex(text[7:]), text)

    @classmethod
    def from_argument(cls, text: str) -> Artifact:
        """A path, or a digest when ``text`` looks like one and names no existing file."""
        if _DIGEST.fullmatch(text) and not Path(text).exists():
            return cls.from_digest(text)
        return cls.from_path(text)
