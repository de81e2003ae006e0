"""The scale-out backend: PostgreSQL (psycopg 3) shared by several keyless processes.

Guarantees (see :mod:`keyless.storage`):

* **one sequencer at a time per log**: a sequencing session is one transaction that starts with
  ``pg_advisory_xact_lock(<log key>)``. Every process that has entries to sequence takes the lock
  in turn, catches up with the head the others committed (reloading its right edge from the tiles
  table) and commits its own batch; the lock is released by the commit, the rollback or the death
  of the connection, so a killed process never blocks the others;
* **checkpoint compare-and-swap**: ``UPDATE logs … WHERE size = old_size`` in the same
  transaction;
* **tiles live in the database** (table ``tiles``), written in the same transaction as the entries
  and the head. Why: the processes may run on different hosts with no shared file system, and one
  transaction makes tiles, entries and checkpoint change together — a crashed or stalled sequencer
  can never leave (or later overwrite) a tile that a committed checkpoint references, which with
  files would need fencing. The read path stays static in spirit: tiles are immutable rows keyed
  by their tlog-tiles path, cacheable by any front end.

Entries are inserted with ``COPY``; connections are per thread (autocommit outside sessions).
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from keyless.errors import Conflict, StorageError
from keyless.storage.migrations import POSTGRES
from keyless.storage.model import Batch, LogHead, StoredEntry

_LOCK_NAMESPACE = 0x6B6C  # "kl": advisory lock keys are (namespace << 32) | crc32(log name)
_MIGRATION_LOCK = _LOCK_NAMESPACE << 32


def _lock_key(log: str) -> int:
    return (_LOCK_NAMESPACE << 32) | (zlib.crc32(log.encode()) & 0x7FFFFFFF)


class _Connections:
    """One psycopg connection per thread (reconnected if it broke), all closed together."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._local = threading.local()
        self._all: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    def get(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            try:
                conn = psycopg.connect(self._url, autocommit=True)
            except psycopg.Error as exc:
                raise StorageError(f"cannot connect to PostgreSQL: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


class _PostgresSession:
    def __init__(self, store: PostgresLogStore, conn: psycopg.Connection[Any], log: str) -> None:
        self._store = store
        self._conn = conn
        self._log = log
        self._log_id = store.log_id(conn, log)

    def head(self) -> LogHead | None:
        row = self._conn.execute(
            "SELECT size, root_hash, checkpoint FROM logs WHERE name = %s", (self._log,)
        ).fetchone()
        return LogHead(row[0], bytes(row[1]), bytes(row[2])) if row else None

    def find(self, dedup_keys: Sequence[bytes]) -> dict[bytes, tuple[int, int]]:
        if self._log_id is None or not dedup_keys:
            return {}
        rows = self._conn.execute(
            "SELECT dedup_key, idx, integrated_time FROM entries "
            "WHERE log_id = %s AND dedup_key = ANY(%s)",
            (self._log_id, list(dedup_keys)),
        )
        return {bytes(key): (idx, itime) for key, idx, itime in rows}

    def read_tile(self, path: str) -> bytes | None:
        return self._store.read_tile_with(self._conn, self._log_id, path)

    def entries(self, start: int, end: int) -> list[StoredEntry]:
        return self._store.entries_with(self._conn, self._log_id, start, end)

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        if self._log_id is None:
            return []
        rows = self._conn.execute(
            "SELECT COALESCE(leaf_hash, dedup_key) FROM entries "
            "WHERE log_id = %s AND idx >= %s AND idx < %s ORDER BY idx",
            (self._log_id, start, end),
        )
        return [bytes(r[0]) for r in rows]

    def commit(self, batch: Batch) -> None:
        conn = self._conn
        head = batch.head
        if self._log_id is None:
            if batch.old_size != 0:
                raise Conflict(f"log {self._log} does not exist")
            row = conn.execute(
                "INSERT INTO logs (name, size, root_hash, checkpoint) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (name) DO NOTHING RETURNING id",
                (self._log, head.size, head.root_hash, head.checkpoint),
            ).fetchone()
            if row is None:
                raise Conflict(f"log {self._log} was created by another process")
            self._log_id = int(row[0])
        else:
            cursor = conn.execute(
                "UPDATE logs SET size = %s, root_hash = %s, checkpoint = %s "
                "WHERE id = %s AND size = %s AND (size < %s OR checkpoint = %s)",
                (
                    head.size,
                    head.root_hash,
                    head.checkpoint,
                    self._log_id,
                    batch.old_size,
                    head.size,
                    head.checkpoint,
                ),
            )
            if cursor.rowcount != 1:
                raise Conflict(
                    f"log {self._log}: the checkpoint moved away from size {batch.old_size}"
                )
        log_id = self._log_id
        with conn.cursor() as cur:
            if batch.tiles:
                cur.executemany(
                    "INSERT INTO tiles (log_id, path, data) VALUES (%s, %s, %s) "
                    "ON CONFLICT (log_id, path) DO UPDATE SET data = EXCLUDED.data",
                    [(log_id, path, data) for path, data in batch.tiles.items()],
                )
            if batch.entries:
                with cur.copy(
                    "COPY entries (log_id, idx, dedup_key, leaf_hash, integrated_time, leaf, "
                    "bundle_entry) FROM STDIN"
                ) as copy:
                    for e in batch.entries:
                        bundle = e.bundle_entry
                        copy.write_row(
                            (
                                log_id,
                                e.index,
                                e.dedup_key,
                                None if e.leaf_hash == e.dedup_key else e.leaf_hash,
                                e.integrated_time,
                                e.leaf,
                                None if bundle is None or bundle == e.leaf else bundle,
                            )
                        )
            for prefix in batch.obsolete:
                cur.execute(
                    "DELETE FROM tiles WHERE log_id = %s AND path LIKE %s", (log_id, prefix + "/%")
                )


class PostgresLogStore:
    """The log store of :class:`PostgresBackend`."""

    def __init__(self, connections: _Connections) -> None:
        self._connections = connections
        self._ids: dict[str, int] = {}

    def log_id(self, conn: psycopg.Connection[Any], log: str) -> int | None:
        """The numeric id of ``log`` (cached once it exists)."""
        found = self._ids.get(log)
        if found is None:
            row = conn.execute("SELECT id FROM logs WHERE name = %s", (log,)).fetchone()
            if row is None:
                return None
            found = self._ids[log] = int(row[0])
        return found

    @contextmanager
    def sequencing(self, log: str) -> Iterator[_PostgresSession]:
        conn = self._connections.get()
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(log),))
                yield _PostgresSession(self, conn, log)
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(f"log {log}: {exc}") from exc
        except psycopg.Error as exc:
            raise StorageError(f"log {log}: sequencing failed: {exc}") from exc

    def head(self, log: str) -> LogHead | None:
        try:
            row = (
                self._connections.get()
                .execute("SELECT size, root_hash, checkpoint FROM logs WHERE name = %s", (log,))
                .fetchone()
            )
        except psycopg.Error as exc:
            raise StorageError(f"cannot read the head of log {log}: {exc}") from exc
        return LogHead(row[0], bytes(row[1]), bytes(row[2])) if row else None

    def read_tile_with(
        self, conn: psycopg.Connection[Any], log_id: int | None, path: str
    ) -> bytes | None:
        """A tile over ``conn`` (inside or outside a session)."""
        if log_id is None:
            return None
        row = conn.execute(
            "SELECT data FROM tiles WHERE log_id = %s AND path = %s", (log_id, path)
        ).fetchone()
        return bytes(row[0]) if row else None

    def read_tile(self, log: str, path: str) -> bytes | None:
        conn = self._connections.get()
        try:
            return self.read_tile_with(conn, self.log_id(conn, log), path)
        except psycopg.Error as exc:
            raise StorageError(f"cannot read tile {path} of log {log}: {exc}") from exc

    def entries_with(
        self, conn: psycopg.Connection[Any], log_id: int | None, start: int, end: int
    ) -> list[StoredEntry]:
        """Entries ``[start, end)`` over ``conn``."""
        if log_id is None or end <= start:
            return []
        rows = conn.execute(
            "SELECT idx, leaf, bundle_entry, integrated_time FROM entries "
            "WHERE log_id = %s AND idx >= %s AND idx < %s ORDER BY idx",
            (log_id, max(start, 0), end),
        )
        return [
            StoredEntry(idx, bytes(leaf), bytes(bundle if bundle is not None else leaf), t)
            for idx, leaf, bundle, t in rows
        ]

    def entries(self, log: str, start: int, end: int) -> list[StoredEntry]:
        conn = self._connections.get()
        try:
            return self.entries_with(conn, self.log_id(conn, log), start, end)
        except psycopg.Error as exc:
            raise StorageError(f"cannot read entries of log {log}: {exc}") from exc

    def index_of(self, log: str, key: bytes) -> int | None:
        conn = self._connections.get()
        log_id = self.log_id(conn, log)
        if log_id is None:
            return None
        row = (
            conn.execute(
                "SELECT idx FROM entries WHERE log_id = %s AND dedup_key = %s", (log_id, key)
            ).fetchone()
            or conn.execute(
                "SELECT min(idx) FROM entries WHERE log_id = %s AND leaf_hash = %s", (log_id, key)
            ).fetchone()
        )
        if row is None or row[0] is None:
            return None
        return int(row[0])

    def logs(self) -> list[str]:
        rows = self._connections.get().execute("SELECT name FROM logs ORDER BY name")
        return [r[0] for r in rows]


class PostgresSearchIndex:
    """The search index of :class:`PostgresBackend`."""

    def __init__(self, connections: _Connections) -> None:
        self._connections = connections

    def add(self, log_name: str, key: str, index: int) -> None:
        self.add_many(log_name, [(key, index)])

    def add_many(self, log_name: str, items: Sequence[tuple[str, int]]) -> None:
        conn = self._connections.get()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO search_index (log, key, idx) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    [(log_name, key, index) for key, index in items],
                )
        except psycopg.Error as exc:
            raise StorageError(f"cannot update the search index: {exc}") from exc

    def lookup(self, log_name: str, key: str) -> list[int]:
        rows = self._connections.get().execute(
            "SELECT idx FROM search_index WHERE log = %s AND key = %s ORDER BY idx",
            (log_name, key),
        )
        return [int(r[0]) for r in rows]


class PostgresKeyValueStore:
    """The expiring key-value store of :class:`PostgresBackend` (atomic via ``ON CONFLICT``)."""

    def __init__(self, connections: _Connections, clock: Callable[[], float] = time.time) -> None:
        self._connections = connections
        self._clock = clock

    def put_if_absent(
        self, namespace: str, key: str, value: bytes, expires_at: float
    ) -> bytes | None:
        now = self._clock()
        conn = self._connections.get()
        try:
            with conn.transaction():
                # take over an expired value, or insert; either way we own the row afterwards
                row = conn.execute(
                    "INSERT INTO kv (namespace, key, value, expires_at) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, "
                    "expires_at = EXCLUDED.expires_at WHERE kv.expires_at <= %s "
                    "RETURNING 1",
                    (namespace, key, value, expires_at, now),
                ).fetchone()
                if row is not None:
                    return None
                existing = conn.execute(
                    "SELECT value FROM kv WHERE namespace = %s AND key = %s", (namespace, key)
                ).fetchone()
                return bytes(existing[0]) if existing else None
        except psycopg.Error as exc:
            raise StorageError(f"key-value store: {exc}") from exc

    def get(self, namespace: str, key: str) -> bytes | None:
        row = (
            self._connections.get()
            .execute(
                "SELECT value FROM kv WHERE namespace = %s AND key = %s AND expires_at > %s",
                (namespace, key, self._clock()),
            )
            .fetchone()
        )
        return bytes(row[0]) if row else None

    def delete(self, namespace: str, key: str) -> None:
        self._connections.get().execute(
            "DELETE FROM kv WHERE namespace = %s AND key = %s", (namespace, key)
        )


class PostgresBackend:
    """A PostgreSQL database (``postgresql://…`` libpq URL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._connections = _Connections(url)
        self._migrate(self._connections.get())
        self.log_store = PostgresLogStore(self._connections)
        self.search_index = PostgresSearchIndex(self._connections)
        self.kv = PostgresKeyValueStore(self._connections)

    @staticmethod
    def _migrate(conn: psycopg.Connection[Any]) -> None:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                conn.execute("CREATE TABLE IF NOT EXISTS keyless_schema (version INTEGER NOT NULL)")
                row = conn.execute("SELECT version FROM keyless_schema").fetchone()
                version = int(row[0]) if row else 0
                if row is None:
                    conn.execute("INSERT INTO keyless_schema (version) VALUES (0)")
                for number, script in enumerate(POSTGRES[version:], start=version + 1):
                    conn.execute(script.encode())
                    conn.execute("UPDATE keyless_schema SET version = %s", (number,))
        except psycopg.Error as exc:
            raise StorageError(f"cannot migrate the PostgreSQL schema: {exc}") from exc

    def close(self) -> None:
        self._connections.close()
