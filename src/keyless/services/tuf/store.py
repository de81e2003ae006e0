"""Where the TUF repository keeps its signed metadata and target files.

Every object is written once under a versioned name (``root/1``, ``targets/3``, ``timestamp/17``,
``target/<sha256>.trusted_root.json``) with *put-if-absent*: when two ``keyless serve``
processes share a PostgreSQL database and both try to publish version N+1, exactly one wins and
the other adopts the winner's file (contracts.md §2, "several processes may share one database").
The embedded default keeps the same objects as files in the data directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from keyless.errors import InvalidInput
from keyless.storage.seam import NEVER, KeyValue

#: kv namespace of TUF objects when the store is the database (keyless.storage kv)
KV_NAMESPACE = "tuf"


class MetadataStore(Protocol):
    """Write-once, named blobs."""

    async def get(self, name: str) -> bytes | None:
        """The blob named ``name``, or ``None``."""
        ...

    async def put_if_absent(self, name: str, data: bytes) -> bytes | None:
        """Store ``data`` unless ``name`` exists; return the existing blob if it did."""
        ...


def _check_name(name: str) -> str:
    parts = name.split("/")
    if len(parts) != 2 or not all(parts) or any(p in (".", "..") for p in parts):
        raise InvalidInput(f"bad TUF object name {name!r}")
    return name


class FileMetadataStore:
    """Blobs as files under one directory; ``O_EXCL`` creation gives put-if-absent."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def get(self, name: str) -> bytes | None:
        path = self.directory / _check_name(name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    async def put_if_absent(self, name: str, data: bytes) -> bytes | None:
        path = self.directory / _check_name(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        try:
            # link() fails if the name exists: an atomic create-if-absent of a complete file.
            os.link(tmp, path)
        except FileExistsError:
            return path.read_bytes()
        finally:
            tmp.unlink(missing_ok=True)
        return None


class KvMetadataStore:
    """Blobs in the shared database, for several processes on PostgreSQL."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def get(self, name: str) -> bytes | None:
        return await self._kv.get(KV_NAMESPACE, _check_name(name))

    async def put_if_absent(self, name: str, data: bytes) -> bytes | None:
        return await self._kv.put_if_absent(KV_NAMESPACE, _check_name(name), data, NEVER)


class MemoryMetadataStore:
    """Blobs in a dict (tests)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    async def get(self, name: str) -> bytes | None:
        return self.blobs.get(_check_name(name))

    async def put_if_absent(self, name: str, data: bytes) -> bytes | None:
        existing = self.blobs.get(_check_name(name))
        if existing is None:
            self.blobs[name] = data
        return existing
