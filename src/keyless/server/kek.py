"""The key-encryption key (KEK) file that wraps private keys kept in a database.

``keyless serve --database postgresql://… --kek-file FILE`` (or ``KEYLESS_KEK_FILE=FILE``): every
process sharing the database is given the same FILE. On the embedded SQLite default the KEK is
``DIR/keys/kek``. The file holds 32 random bytes, base64, one line; it is created when it does
not exist — mode 0600, written to a temporary file and then hard-linked into place, so that of
several processes started at once with the same path exactly one creates it and the others
read the winner's key. A KEK file that group or others may read is refused.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from keyless.errors import ConfigError
from keyless.sealing import KEK_SIZE, Sealer

#: the environment variable naming the KEK file when --kek-file is not given
ENV = "KEYLESS_KEK_FILE"
#: the KEK of the embedded default, under the data directory
DEFAULT_NAME = "keys/kek"

MISSING_FOR_POSTGRES = (
    "PostgreSQL keeps the instance's private keys in the shared database, wrapped under a "
    "key-encryption key that the database never sees: give every keyless serve process the "
    "same key file with --kek-file FILE (or the environment variable KEYLESS_KEK_FILE=FILE). "
    "keyless creates FILE (mode 0600, a fresh random key) if it does not exist; back it up "
    "separately from the database"
)


def _read(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"key-encryption key {path} is not a regular file")
        if info.st_mode & 0o077:
            raise ConfigError(
                f"key-encryption key {path} is readable by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run chmod 600 {path}"
            )
        text = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        kek = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        kek = b""
    if len(kek) != KEK_SIZE:
        raise ConfigError(
            f"key-encryption key {path} must hold {KEK_SIZE} random bytes in base64 (one line)"
        )
    return kek


def _create(path: Path) -> None:
    """Create ``path`` with a fresh key unless it exists; concurrent creators share one key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, base64.b64encode(os.urandom(KEK_SIZE)) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic, and fails if another process linked first
    except FileExistsError:
        pass  # the winner's key is the one everybody uses
    finally:
        tmp.unlink()


def load_or_create(path: Path) -> Sealer:
    """The sealer over the KEK in ``path``, creating the file on first use."""
    path = path.expanduser()
    try:
        try:
            return Sealer(_read(path))
        except FileNotFoundError:
            _create(path)
            return Sealer(_read(path))
    except OSError as exc:
        raise ConfigError(f"key-encryption key {path}: {exc.strerror or exc}") from exc


def kek_path(kek_file: Path | None, data_dir: Path, *, shared: bool) -> Path:
    """Where the KEK is: ``kek_file``, else (embedded default only) ``DIR/keys/kek``."""
    if kek_file is not None:
        return kek_file
    if shared:
        raise ConfigError(MISSING_FOR_POSTGRES)
    return data_dir / DEFAULT_NAME
