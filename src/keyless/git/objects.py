"""Signed git objects: the payload git verifies and the signature, as git splits them.

* A commit carries its signature in the ``gpgsig`` header (``gpgsig-sha256`` in a SHA-256
  repository), continuation lines indented by one space; the payload is the commit without that
  header (git ``commit.c`` ``parse_buffer_signed_by_header``).
* A tag carries it at the end of its message: the payload ends where the last line that starts a
  known signature armor begins (git ``gpg-interface.c`` ``parse_signed_buffer``).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from keyless.errors import ConfigError, InvalidInput

__all__ = ["SignedObject", "read_object", "split_commit", "split_tag"]

#: armor lines git recognises (openpgp, x509, ssh): a tag's signature starts at the last of them
_SIGNATURE_STARTS = (
    b"-----BEGIN PGP SIGNATURE-----",
    b"-----BEGIN PGP MESSAGE-----",
    b"-----BEGIN SIGNED MESSAGE-----",
    b"-----BEGIN SSH SIGNATURE-----",
)


@dataclass(frozen=True)
class SignedObject:
    oid: str
    kind: str
    payload: bytes
    signature: bytes


def split_commit(raw: bytes, header: bytes = b"gpgsig") -> tuple[bytes, bytes]:
    """(payload, signature) of a commit object; InvalidInput when it is not signed."""
    head, sep, body = raw.partition(b"\n\n")
    kept: list[bytes] = []
    signature: list[bytes] = []
    in_signature = False
    for line in head.split(b"\n"):
        if in_signature and line.startswith(b" "):
            signature.append(line[1:])
            continue
        in_signature = False
        if line.startswith(header + b" "):
            if signature:
                raise InvalidInput(f"the commit has two {header.decode()} headers")
            in_signature = True
            signature.append(line[len(header) + 1 :])
            continue
        kept.append(line)
    if not signature:
        raise InvalidInput("the commit is not signed (no gpgsig header)")
    return b"\n".join(kept) + sep + body, b"\n".join(signature) + b"\n"


def split_tag(raw: bytes) -> tuple[bytes, bytes]:
    """(payload, signature) of a tag object; InvalidInput when it is not signed."""
    start = None
    offset = 0
    for line in raw.splitlines(keepends=True):
        if line.startswith(_SIGNATURE_STARTS):
            start = offset
        offset += len(line)
    if start is None:
        raise InvalidInput("the tag is not signed (no signature in its message)")
    return raw[:start], raw[start:]


def _git(*args: str) -> bytes:
    try:
        done = subprocess.run(["git", *args], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot run git: {exc}") from exc
    if done.returncode != 0:
        reason = " ".join(done.stderr.decode(errors="replace").split()) or "failed"
        raise InvalidInput(f"git {' '.join(args)}: {reason}")
    return done.stdout


def read_object(rev: str, kind: str) -> SignedObject:
    """Resolve ``rev`` to a commit or tag object of the repository here and split it."""
    if kind not in ("commit", "tag"):
        raise ValueError(kind)
    if rev.startswith("-"):
        raise InvalidInput(f"{rev!r} is not a revision")
    suffix = "^{commit}" if kind == "commit" else ""
    oid = _git("rev-parse", "--verify", "--quiet", "--end-of-options", rev + suffix)
    oid_text = oid.decode().strip()
    if kind == "tag" and _git("cat-file", "-t", oid_text).strip() != b"tag":
        raise InvalidInput(f"{rev} is not an annotated tag")
    raw = _git("cat-file", kind, oid_text)
    if kind == "commit":
        header = b"gpgsig-sha256" if len(oid_text) == 64 else b"gpgsig"
        payload, signature = split_commit(raw, header)
    else:
        payload, signature = split_tag(raw)
    return SignedObject(oid_text, kind, payload, signature)
