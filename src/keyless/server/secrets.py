"""Where the stack's private keys and certificates live, created once and reused after.

First start creates every key and certificate; later starts must reuse them, or clients that
trust the instance would break (contracts.md §2). Two homes, one interface:

* :class:`FileSecrets` — files under ``DIR/keys/`` (mode 0600), the embedded default. The caller
  holds the data-directory lock, so creation cannot race.
* :class:`SharedSecrets` — the shared database's kv store, for several ``keyless serve`` processes
  on one PostgreSQL database (possibly on different machines): every process proposes its freshly
  generated value with put-if-absent and all adopt the first one written, so they converge on one
  set of keys without any other coordination. Every value is wrapped under the key-encryption
  key the operator gives each process (:mod:`keyless.sealing`, :mod:`keyless.server.kek`): the
  database alone, or a backup of it, reveals no key. Clear values an older version stored are
  wrapped in place when first read.

Material that belongs together (a CA key and the certificate over it) is created and stored as
one blob so that a race can never pair one process's key with another's certificate.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from keyless.errors import ConfigError
from keyless.localfiles import write_file_atomically
from keyless.sealing import SealedKv, Sealer
from keyless.storage.seam import NEVER, KeyValue

KV_NAMESPACE = "keyless-secrets"


class Secrets(Protocol):
    """Named, write-once secret blobs."""

    async def obtain(self, name: str, create: Callable[[], bytes]) -> bytes:
        """The blob ``name``; on first use ``create()`` makes it and it is stored for good."""
        ...

    async def get(self, name: str) -> bytes | None:
        """The blob ``name`` if it exists."""
        ...

    async def replace(self, name: str, data: bytes) -> None:
        """Overwrite ``name`` (key rotation only; callers keep the old value elsewhere)."""
        ...


def _check(name: str) -> str:
    if not name or name.startswith("/") or ".." in name.split("/"):
        raise ConfigError(f"bad secret name {name!r}")
    return name


class FileSecrets:
    """Secrets as files in a directory owned by this process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def get(self, name: str) -> bytes | None:
        try:
            return (self.directory / _check(name)).read_bytes()
        except FileNotFoundError:
            return None

    async def obtain(self, name: str, create: Callable[[], bytes]) -> bytes:
        existing = await self.get(name)
        if existing is not None:
            return existing
        data = create()
        await self.replace(name, data)
        return data

    async def replace(self, name: str, data: bytes) -> None:
        path = self.directory / _check(name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_file_atomically(path, data, mode=0o600, fsync=True)


class SharedSecrets:
    """Secrets in the shared database, wrapped under ``sealer``'s KEK; the first process to write
    a name wins."""

    def __init__(self, kv: KeyValue, sealer: Sealer) -> None:
        self._kv = SealedKv(kv, sealer)

    async def get(self, name: str) -> bytes | None:
        return await self._kv.get(KV_NAMESPACE, _check(name))

    async def obtain(self, name: str, create: Callable[[], bytes]) -> bytes:
        existing = await self.get(name)
        if existing is not None:
            return existing
        data = create()
        winner = await self._kv.put_if_absent(KV_NAMESPACE, _check(name), data, NEVER)
        return data if winner is None else winner

    async def replace(self, name: str, data: bytes) -> None:
        await self._kv.delete(KV_NAMESPACE, _check(name))
        await self._kv.put_if_absent(KV_NAMESPACE, _check(name), data, NEVER)


def pack_directory(directory: Path) -> bytes:
    """The files under ``directory`` as one blob, to share as one secret (base64 in JSON)."""
    files = {
        str(path.relative_to(directory)): base64.b64encode(path.read_bytes()).decode()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }
    return json.dumps(files, sort_keys=True).encode()


def unpack_directory(blob: bytes, directory: Path) -> None:
    """Write the files of a :func:`pack_directory` blob under ``directory`` (0600 files, 0700
    directories), refusing names that climb out of it."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, data in json.loads(blob).items():
        target = directory / name
        if ".." in Path(name).parts:
            raise ConfigError(f"bad file name {name!r} in stored key material")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_file_atomically(target, base64.b64decode(data), mode=0o600)
