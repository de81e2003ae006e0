"""Writing local files whole: a reader sees the old content or the new one, never a part.

Its own small module (not :mod:`keyless.storage`) so that the client commands that keep files —
``keyless-git``'s certificate cache, key files — do not import the storage layer and asyncio
just to write one file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_file_atomically(
    path: Path, data: bytes, *, mode: int = 0o644, fsync: bool = False
) -> None:
    """Write ``path`` so that a reader sees the old content or the whole new one, never a part:
    a new, uniquely named temporary file beside it (created with ``mode``, never through a
    symlink), optionally fsynced, renamed over it. Processes writing the same file at once (e.g.
    ``--workers N`` at start) each rename a whole copy."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            if fsync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
