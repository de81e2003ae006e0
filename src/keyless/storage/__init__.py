"""Storage of keyless: small protocols split by guarantee, and ``open_storage(url)``.

architecture.md "Layers": the log engine needs three guarantees, and each backend states how it
meets them —

* a **sequencing session** (:class:`SequencingSession`): one sequencer at a time per log (SQLite's
  ``BEGIN IMMEDIATE`` write lock, PostgreSQL's ``pg_advisory_xact_lock``, a lock in memory), in
  which the head is read, the dedup index consulted, and the batch committed;
* a **checkpoint compare-and-swap** (:meth:`SequencingSession.commit`): entries and the new head are
  written in one transaction that only succeeds if the head is still the one the batch extended, so
  two processes can never publish two different checkpoints of the same size;
* a **tile store** (``read_tile``): C2SP tlog-tiles blobs, durable no later than the head that
  references them.

The backends are synchronous (sqlite3, psycopg) and confined to threads; :class:`Storage` is the
asyncio facade the services use, so that database I/O never blocks the event loop. The side stores
``storage.search_index`` and ``storage.kv`` live in the same database (docs/internal-apis.md).

URLs: ``memory://`` (tests, fault injection), ``sqlite:///path/keyless.db`` (embedded default; tiles
as files under ``data_dir``), ``postgresql://…`` (several processes on one database; tiles in the
database). What the two SQL backends share (statements, per-thread connections, error mapping)
lives in :mod:`keyless.storage.sql`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from keyless.errors import ConfigError
from keyless.storage.model import Batch, LogHead, NewEntry, StoredEntry, check_log_name

__all__ = [
    "Backend",
    "Batch",
    "KeyValueStore",
    "LogHead",
    "LogStore",
    "NewEntry",
    "SearchIndex",
    "SequencingSession",
    "Snapshots",
    "Storage",
    "StoredEntry",
    "check_log_name",
    "open_storage",
]

T = TypeVar("T")


class SequencingSession(Protocol):
    """The exclusive, transactional view of one log held by the one sequencer of the moment."""

    def head(self) -> LogHead | None:
        """The committed head, or None for a log that was never initialised."""
        ...

    def find(self, dedup_keys: Sequence[bytes]) -> dict[bytes, tuple[int, int]]:
        """dedup key → (index, integrated_time) for the keys already in the log."""
        ...

    def read_tile(self, path: str) -> bytes | None:
        """A tile or entry bundle by tlog-tiles path, None if absent."""
        ...

    def entries(self, start: int, end: int) -> list[StoredEntry]:
        """Entries ``start ≤ index < end`` (used to rebuild lost tiles)."""
        ...

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes of entries ``start ≤ index < end`` (used to rebuild lost tiles)."""
        ...

    def commit(self, batch: Batch) -> None:
        """Make ``batch`` durable atomically, if the head is still at ``batch.old_size``.

        Raises :class:`keyless.errors.Conflict` when another sequencer moved the head (the
        checkpoint compare-and-swap failed) and :class:`keyless.errors.StorageError` on I/O failure.
        """
        ...


class LogStore(Protocol):
    """Durable sequence store + tile store of every log in one database (synchronous)."""

    def sequencing(self, log: str) -> AbstractContextManager[SequencingSession]:
        """Enter the exclusive sequencing session of ``log`` (blocks while another holds it)."""
        ...

    def head(self, log: str) -> LogHead | None:
        """The committed head of ``log`` (any process may call this)."""
        ...

    def read_tile(self, log: str, path: str) -> bytes | None:
        """A tile or entry bundle by its tlog-tiles path, None if absent."""
        ...

    def entries(self, log: str, start: int, end: int) -> list[StoredEntry]:
        """Committed entries ``start ≤ index < end`` in index order."""
        ...

    def index_of(self, log: str, key: bytes) -> int | None:
        """The index of the entry whose dedup key — or else leaf hash — is ``key``."""
        ...

    def logs(self) -> list[str]:
        """The names of the logs present in this database."""
        ...


@runtime_checkable
class Snapshots(Protocol):
    """A log store that can pin the calling thread's reads to one committed state (SQL)."""

    def snapshot(self) -> AbstractContextManager[None]:
        """Within the block, this thread's reads see one committed state of every log."""
        ...


class SearchIndex(Protocol):
    """Secondary index of a log: string key (e.g. ``sha256:…``, an email) → entry indexes."""

    def add(self, log_name: str, key: str, index: int) -> None: ...

    def add_many(self, log_name: str, items: Sequence[tuple[str, int]]) -> None: ...

    def lookup(self, log_name: str, key: str) -> list[int]: ...


class KeyValueStore(Protocol):
    """Small expiring values (token-replay guard, OIDC codes); ``put_if_absent`` is atomic.
    Also event counts in a sliding window (:class:`keyless.storage.seam.EventWindows`), kept in
    their own table and pruned once ``now + window`` has passed."""

    def put_if_absent(
        self, namespace: str, key: str, value: bytes, expires_at: float
    ) -> bytes | None: ...

    def get(self, namespace: str, key: str) -> bytes | None: ...

    def replace(
        self, namespace: str, key: str, expected: bytes, value: bytes, expires_at: float
    ) -> bool: ...

    def delete(self, namespace: str, key: str) -> None: ...

    def reserve_event(
        self,
        namespace: str,
        limits: Sequence[tuple[str, int]],
        event: str,
        now: float,
        window: float,
    ) -> tuple[str, float] | None: ...

    def withdraw_event(
        self, namespace: str, event: str, keys: Sequence[str], clear: Sequence[str] = ()
    ) -> None: ...


class Backend(Protocol):
    """One database: the log store and the side stores, all synchronous."""

    @property
    def url(self) -> str: ...

    @property
    def log_store(self) -> LogStore: ...

    @property
    def search_index(self) -> SearchIndex: ...

    @property
    def kv(self) -> KeyValueStore: ...

    def close(self) -> None: ...


class AsyncSearchIndex:
    """``storage.search_index``: the async face of :class:`SearchIndex` (runs in a thread)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def add(self, log_name: str, key: str, index: int) -> None:
        """Record that entry ``index`` of ``log_name`` is found under ``key``."""
        await self._storage.run(self._storage.backend.search_index.add, log_name, key, index)

    async def add_many(self, log_name: str, items: Sequence[tuple[str, int]]) -> None:
        """Record many (key, index) pairs in one transaction."""
        await self._storage.run(self._storage.backend.search_index.add_many, log_name, items)

    async def lookup(self, log_name: str, key: str) -> list[int]:
        """The indexes recorded under ``key``, ascending."""
        return await self._storage.run(self._storage.backend.search_index.lookup, log_name, key)


class AsyncKeyValueStore:
    """``storage.kv``: the async face of :class:`KeyValueStore` (runs in a thread)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def put_if_absent(
        self, namespace: str, key: str, value: bytes, expires_at: float
    ) -> bytes | None:
        """Store ``value`` unless a live value exists; return that existing value, else None."""
        kv = self._storage.backend.kv
        return await self._storage.run(kv.put_if_absent, namespace, key, value, expires_at)

    async def get(self, namespace: str, key: str) -> bytes | None:
        """The live value under ``key`` (expired values read as absent)."""
        return await self._storage.run(self._storage.backend.kv.get, namespace, key)

    async def replace(
        self, namespace: str, key: str, expected: bytes, value: bytes, expires_at: float
    ) -> bool:
        """Store ``value`` if the live value under ``key`` is exactly ``expected``; whether it
        was (an atomic compare-and-set)."""
        kv = self._storage.backend.kv
        return await self._storage.run(kv.replace, namespace, key, expected, value, expires_at)

    async def delete(self, namespace: str, key: str) -> None:
        """Remove ``key`` (no error if absent)."""
        await self._storage.run(self._storage.backend.kv.delete, namespace, key)

    async def reserve_event(
        self,
        namespace: str,
        limits: Sequence[tuple[str, int]],
        event: str,
        now: float,
        window: float,
    ) -> tuple[str, float] | None:
        """Record ``event`` under every key unless one is at its limit in the window
        (:class:`keyless.storage.seam.EventWindows`); that key and its oldest event if so."""
        kv = self._storage.backend.kv
        return await self._storage.run(kv.reserve_event, namespace, limits, event, now, window)

    async def withdraw_event(
        self, namespace: str, event: str, keys: Sequence[str], clear: Sequence[str] = ()
    ) -> None:
        """Remove ``event`` from ``keys`` and every event of the keys in ``clear``."""
        kv = self._storage.backend.kv
        await self._storage.run(kv.withdraw_event, namespace, event, keys, clear)


class Storage:
    """The asyncio facade over one :class:`Backend`.

    Each log gets its own single-thread *writer* executor (its sequencing sessions run there, one
    at a time); reads and side-store calls share a small reader pool. Backends keep one connection
    per thread.
    """

    def __init__(self, backend: Backend, *, readers: int = 4) -> None:
        self.backend = backend
        self.search_index = AsyncSearchIndex(self)
        self.kv = AsyncKeyValueStore(self)
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="keyless-storage-read")
        self._writers: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The URL the storage was opened with (passwords included: do not log it)."""
        return self.backend.url

    @property
    def log_store(self) -> LogStore:
        """The synchronous log store (call it only through :meth:`run` / :meth:`run_writer`)."""
        return self.backend.log_store

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run a synchronous storage call on the reader pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, fn, *args)

    async def run_writer(self, log: str, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn`` on the single writer thread of ``log`` (its sequencing sessions)."""
        with self._lock:
            executor = self._writers.get(log)
            if executor is None:
                executor = ThreadPoolExecutor(1, thread_name_prefix=f"keyless-seq-{log}")
                self._writers[log] = executor
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, fn, *args)

    async def close(self) -> None:
        """Stop the threads and close the database connections."""
        loop = asyncio.get_running_loop()
        with self._lock:
            writers = list(self._writers.values())
            self._writers.clear()
        for executor in writers:
            await loop.run_in_executor(None, executor.shutdown, True)
        await loop.run_in_executor(None, self._readers.shutdown, True)
        await loop.run_in_executor(None, self.backend.close)


def open_backend(url: str, *, data_dir: Path | str | None = None) -> Backend:
    """The synchronous backend for ``url`` (used by :func:`open_storage` and by ``fsck``)."""
    if url.startswith("memory:"):
        from keyless.storage.memory import MemoryBackend

        return MemoryBackend()
    if url.startswith("sqlite:"):
        from keyless.storage.sqlite import SQLiteBackend

        return SQLiteBackend.from_url(url, data_dir=Path(data_dir) if data_dir else None)
    if url.startswith(("postgresql:", "postgres:")):
        from keyless.storage.postgres import PostgresBackend

        return PostgresBackend(url)
    raise ConfigError(
        f"unsupported storage URL {url.split(':', 1)[0]!r}: use memory, sqlite or postgresql"
    )


async def open_storage(
    url: str, *, data_dir: Path | str | None = None, backend: Backend | None = None
) -> Storage:
    """Open (and migrate) the storage at ``url``.

    ``data_dir`` is where the SQLite backend keeps tiles (default: the database's folder).
    ``backend`` lets tests pass a pre-built backend (for example a shared
    :class:`keyless.storage.memory.MemoryBackend` with faults armed).
    """
    if backend is None:
        loop = asyncio.get_running_loop()
        backend = await loop.run_in_executor(None, lambda: open_backend(url, data_dir=data_dir))
    return Storage(backend)
