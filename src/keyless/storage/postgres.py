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

import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from keyless.errors import Conflict, StorageError
from keyless.storage.migrations import POSTGRES, check_not_newer
from keyless.storage.model import Batch, LogHead, StoredEntry
from keyless.storage.sql import (
    LogIds,
    SqlKeyValueStore,
    SqlSearchIndex,
    Statements,
    ThreadConnections,
    stored_columns,
)

_LOCK_NAMESPACE = 0x6B6C  # "kl": advisory lock keys are (namespace << 32) | crc32(log name)
_MIGRATION_LOCK = _LOCK_NAMESPACE << 32


def _lock_key(log: str) -> int:
    return (_LOCK_NAMESPACE << 32) | (zlib.crc32(log.encode()) & 0x7FFFFFFF)


#: the first of the two int4 advisory-lock keys of event windows (a key space of its own:
#: PostgreSQL's one-bigint and two-int4 lock keys never overlap)
_EVENT_LOCKS = _LOCK_NAMESPACE << 16 | 1


def _event_lock(key: str) -> int:
    """The second int4 lock key of an event window's key (signed; a collision only serialises)."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) - (1 << 31)


_SQL = Statements("%s", psycopg.Error)
_Connections = ThreadConnections[psycopg.Connection[Any]]


def _connections(url: str) -> _Connections:
    """One autocommit connection per thread, made again when it broke (server restart)."""

    def connect() -> psycopg.Connection[Any]:
        with _SQL.errors("cannot connect to PostgreSQL"):
            return psycopg.connect(url, autocommit=True)

    return _Connections(connect, lambda conn: not (conn.closed or conn.broken))


class _PostgresSession:
    def __init__(self, store: PostgresLogStore, conn: psycopg.Connection[Any], log: str) -> None:
        self._store = store
        self._conn = conn
        self._log = log
        self._log_id = store.ids.get(conn, log)

    def head(self) -> LogHead | None:
        return _SQL.head(self._conn, self._log)

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
        elif not _SQL.swap_head(conn, self._log_id, batch):
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
                    "COPY entries (log_id, idx, dedup_key, integrated_time, leaf, leaf_hash, "
                    "bundle_entry) FROM STDIN"
                ) as copy:
                    for e in batch.entries:
                        copy.write_row(
                            (log_id, e.index, e.dedup_key, e.integrated_time, e.leaf,
                             *stored_columns(e))
                        )
            for prefix in batch.obsolete:
                cur.execute(
                    "DELETE FROM tiles WHERE log_id = %s AND path LIKE %s", (log_id, prefix + "/%")
                )


class PostgresLogStore:
    """The log store of :class:`PostgresBackend`."""

    def __init__(self, connections: _Connections) -> None:
        self._connections = connections
        self.ids = LogIds(_SQL)

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
        with _SQL.errors(f"cannot read the head of log {log}"):
            return _SQL.head(self._connections.get(), log)

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
        with _SQL.errors(f"cannot read tile {path} of log {log}"):
            return self.read_tile_with(conn, self.ids.get(conn, log), path)

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
        with _SQL.errors(f"cannot read entries of log {log}"):
            return self.entries_with(conn, self.ids.get(conn, log), start, end)

    def index_of(self, log: str, key: bytes) -> int | None:
        conn = self._connections.get()
        with _SQL.errors(f"cannot look up an entry of log {log}"):
            return self._index_of(conn, log, key)

    def _index_of(self, conn: psycopg.Connection[Any], log: str, key: bytes) -> int | None:
        log_id = self.ids.get(conn, log)
        if log_id is None:
            return None
        return _SQL.first_entry_id(conn, log_id, key, "idx")

    def logs(self) -> list[str]:
        with _SQL.errors("cannot list the logs"):
            return _SQL.log_names(self._connections.get())

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Pin this thread's reads to one committed state (a read-only REPEATABLE READ
        transaction: entries, tiles and heads as of its first statement), so that an
        offline-style check can run while other processes write."""
        conn = self._connections.get()
        with _SQL.errors("cannot open a read snapshot"), conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield


class PostgresSearchIndex(SqlSearchIndex):
    """The search index of :class:`PostgresBackend`."""

    def add_many(self, log_name: str, items: Sequence[tuple[str, int]]) -> None:
        conn = self._connections.get()
        errors = _SQL.errors("cannot update the search index")
        with errors, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO search_index (log, key, idx) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                [(log_name, key, index) for key, index in items],
            )


class PostgresKeyValueStore(SqlKeyValueStore):
    """The expiring key-value store of :class:`PostgresBackend` (atomic via ``ON CONFLICT``); a
    reservation of events holds a transaction-scoped advisory lock on each of its keys, taken in
    one order so that two reservations never deadlock."""

    @contextmanager
    def events(self, keys: Sequence[str]) -> Iterator[psycopg.Connection[Any]]:
        conn = self._connections.get()
        with conn.transaction():
            for lock in sorted({_event_lock(key) for key in keys}):
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_EVENT_LOCKS, lock))
            yield conn

    def put_if_absent(
        self, namespace: str, key: str, value: bytes, expires_at: float
    ) -> bytes | None:
        now = self._clock()
        conn = self._connections.get()
        with _SQL.errors("key-value store"), conn.transaction():
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


class PostgresBackend:
    """A PostgreSQL database (``postgresql://…`` libpq URL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._connections = _connections(url)
        self._migrate(self._connections.get())
        self.log_store = PostgresLogStore(self._connections)
        self.search_index = PostgresSearchIndex(self._connections, _SQL)
        self.kv = PostgresKeyValueStore(self._connections, _SQL)

    @staticmethod
    def _migrate(conn: psycopg.Connection[Any]) -> None:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                conn.execute("CREATE TABLE IF NOT EXISTS keyless_schema (version INTEGER NOT NULL)")
                row = conn.execute("SELECT version FROM keyless_schema").fetchone()
                version = int(row[0]) if row else 0
                check_not_newer(version, len(POSTGRES), "the PostgreSQL database")
                if row is None:
                    conn.execute("INSERT INTO keyless_schema (version) VALUES (0)")
                for number, script in enumerate(POSTGRES[version:], start=version + 1):
                    conn.execute(script.encode())
                    conn.execute("UPDATE keyless_schema SET version = %s", (number,))
        except psycopg.Error as exc:
            raise StorageError(f"cannot migrate the PostgreSQL schema: {exc}") from exc

    def close(self) -> None:
        self._connections.close()
