"""What the two SQL backends share (:mod:`keyless.storage.sqlite`, :mod:`keyless.storage.postgres`).

Both keep the same tables (:mod:`keyless.storage.migrations`) and differ in three ways only: the
parameter placeholder (``?`` for sqlite3, ``%s`` for psycopg, PEP 249 ``paramstyle``), how a
log's entries are keyed (SQLite: one rowid range per log; PostgreSQL: ``(log_id, idx)``) and where
tiles live. The statements on ``logs``, ``kv`` and ``search_index``, the checkpoint
compare-and-swap, the per-thread connections and the mapping of driver errors to
:class:`keyless.errors.StorageError` are therefore written once, here, with ``?`` placeholders
that :class:`Statements` rewrites for the driver.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Generic, Protocol, TypeVar

from keyless.errors import StorageError
from keyless.storage.model import Batch, LogHead, NewEntry


class Connection(Protocol):
    """The part of a DB-API connection (sqlite3, psycopg 3) the shared code uses."""

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...

    def close(self) -> None: ...


C = TypeVar("C", bound=Connection)


class ThreadConnections(Generic[C]):
    """One connection per thread, made again when ``usable`` says it broke, all closed together.

    The backends are confined to threads (:class:`keyless.storage.Storage`), and neither sqlite3
    nor psycopg connections may run two statements at once, so each thread gets its own.
    """

    def __init__(
        self, connect: Callable[[], C], usable: Callable[[C], bool] = lambda _conn: True
    ) -> None:
        self._connect = connect
        self._usable = usable
        self._local = threading.local()
        self._all: list[C] = []
        self._lock = threading.Lock()

    def get(self) -> C:
        """This thread's connection."""
        conn: C | None = getattr(self._local, "conn", None)
        if conn is None or not self._usable(conn):
            if conn is not None:  # broken (e.g. the database restarted): release it now
                with self._lock:
                    if conn in self._all:
                        self._all.remove(conn)
                with contextlib.suppress(Exception):
                    conn.close()
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection any thread made."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


def stored_columns(entry: NewEntry) -> tuple[bytes | None, bytes | None]:
    """The ``leaf_hash`` and ``bundle_entry`` columns of ``entry``: NULL where they would repeat
    ``dedup_key`` or ``leaf`` (the common case costs no extra bytes, migrations docstring)."""
    bundle = entry.bundle_entry
    return (
        None if entry.leaf_hash == entry.dedup_key else entry.leaf_hash,
        None if bundle is None or bundle == entry.leaf else bundle,
    )


class Statements:
    """The statements both SQL backends run, for one driver's placeholder and error class."""

    def __init__(self, placeholder: str, error: type[Exception]) -> None:
        self._placeholder = placeholder
        self.error = error

    def sql(self, text: str) -> str:
        """``text`` with its ``?`` placeholders in the driver's style."""
        return text if self._placeholder == "?" else text.replace("?", self._placeholder)

    @contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Report a driver error as :class:`StorageError` prefixed by ``what``."""
        try:
            yield
        except self.error as exc:
            raise StorageError(f"{what}: {exc}") from exc

    # logs -------------------------------------------------------------------------------------
    def head(self, conn: Connection, log: str) -> LogHead | None:
        """The committed head of ``log`` over ``conn``."""
        row = conn.execute(
            self.sql("SELECT size, root_hash, checkpoint FROM logs WHERE name = ?"), (log,)
        ).fetchone()
        return LogHead(int(row[0]), bytes(row[1]), bytes(row[2])) if row else None

    def log_id(self, conn: Connection, log: str) -> int | None:
        """The numeric id of ``log``, None while it does not exist."""
        row = conn.execute(self.sql("SELECT id FROM logs WHERE name = ?"), (log,)).fetchone()
        return None if row is None else int(row[0])

    def log_names(self, conn: Connection) -> list[str]:
        """The names of every log, sorted."""
        return [str(r[0]) for r in conn.execute("SELECT name FROM logs ORDER BY name")]

    def swap_head(self, conn: Connection, log_id: int, batch: Batch) -> bool:
        """The checkpoint compare-and-swap: move the head to ``batch.head`` only if it is still
        at ``batch.old_size`` (a same-size swap only to the identical checkpoint, so that a
        repair-only batch never re-signs). False when another sequencer moved it."""
        head = batch.head
        cursor = conn.execute(
            self.sql(
                "UPDATE logs SET size = ?, root_hash = ?, checkpoint = ? "
                "WHERE id = ? AND size = ? AND (size < ? OR checkpoint = ?)"
            ),
            (
                head.size,
                head.root_hash,
                head.checkpoint,
                log_id,
                batch.old_size,
                head.size,
                head.checkpoint,
            ),
        )
        return int(cursor.rowcount) == 1

    def first_entry_id(
        self, conn: Connection, log_id: int, key: bytes, id_column: str
    ) -> int | None:
        """The ``id_column`` value of the entry logged under dedup ``key``, else of the first
        entry with leaf hash ``key`` (a resubmission without a dedup key); None if neither."""
        if id_column not in ("id", "idx"):  # the column names of the two schemas, not input
            raise ValueError(f"unknown entry id column {id_column!r}")
        by_dedup = f"SELECT {id_column} FROM entries WHERE log_id = ? AND dedup_key = ?"  # noqa: S608
        by_leaf = f"SELECT min({id_column}) FROM entries WHERE log_id = ? AND leaf_hash = ?"  # noqa: S608
        row = (
            conn.execute(self.sql(by_dedup), (log_id, key)).fetchone()
            or conn.execute(self.sql(by_leaf), (log_id, key)).fetchone()
        )
        return None if row is None or row[0] is None else int(row[0])

    # side stores ------------------------------------------------------------------------------
    def search_lookup(self, conn: Connection, log: str, key: str) -> list[int]:
        """The entry indexes recorded under ``key``, ascending."""
        rows = conn.execute(
            self.sql("SELECT idx FROM search_index WHERE log = ? AND key = ? ORDER BY idx"),
            (log, key),
        )
        return [int(r[0]) for r in rows]

    def kv_get(self, conn: Connection, namespace: str, key: str, now: float) -> bytes | None:
        """The value under ``key`` unless it expired by ``now``."""
        row = conn.execute(
            self.sql("SELECT value FROM kv WHERE namespace = ? AND key = ? AND expires_at > ?"),
            (namespace, key, now),
        ).fetchone()
        return bytes(row[0]) if row else None

    def kv_replace(
        self, conn: Connection, namespace: str, key: str, expected: bytes, value: bytes,
        *, expires_at: float, now: float,
    ) -> bool:
        """Store ``value`` if the live value under ``key`` is ``expected``; whether it was."""
        cursor = conn.execute(
            self.sql(
                "UPDATE kv SET value = ?, expires_at = ? "
                "WHERE namespace = ? AND key = ? AND value = ? AND expires_at > ?"
            ),
            (value, expires_at, namespace, key, expected, now),
        )
        return bool(cursor.rowcount == 1)

    def kv_delete(self, conn: Connection, namespace: str, key: str) -> None:
        """Remove ``key`` (no error if absent)."""
        conn.execute(self.sql("DELETE FROM kv WHERE namespace = ? AND key = ?"), (namespace, key))

    def events_reserve(
        self,
        conn: Connection,
        namespace: str,
        limits: Sequence[tuple[str, int]],
        event: str,
        *,
        now: float,
        window: float,
    ) -> tuple[str, float] | None:
        """The body of ``reserve_event`` (:class:`keyless.storage.seam.EventWindows`), run in a
        transaction that no other reservation of these keys can interleave with: prune the
        keys' expired events, count the live ones, insert ``event`` under every key or refuse."""
        for key, limit in limits:
            conn.execute(
                self.sql("DELETE FROM kv_events WHERE namespace = ? AND key = ? "
                         "AND expires_at <= ?"),
                (namespace, key, now),
            )  # fmt: skip
            count, oldest = conn.execute(
                self.sql("SELECT count(*), min(at) FROM kv_events "
                         "WHERE namespace = ? AND key = ? AND at > ?"),
                (namespace, key, now - window),
            ).fetchone()  # fmt: skip
            if int(count) >= limit:
                return key, float(oldest if oldest is not None else now)
        for key, _limit in limits:
            conn.execute(
                self.sql("INSERT INTO kv_events (namespace, key, event, at, expires_at) "
                         "VALUES (?, ?, ?, ?, ?)"),
                (namespace, key, event, now, now + window),
            )  # fmt: skip
        return None

    def events_withdraw(
        self, conn: Connection, namespace: str, event: str, keys: Sequence[str],
        clear: Sequence[str],
    ) -> None:
        """The body of ``withdraw_event``, run in one transaction."""
        for key in keys:
            conn.execute(
                self.sql("DELETE FROM kv_events WHERE namespace = ? AND key = ? AND event = ?"),
                (namespace, key, event),
            )
        for key in clear:
            conn.execute(
                self.sql("DELETE FROM kv_events WHERE namespace = ? AND key = ?"),
                (namespace, key),
            )

    def events_sweep(self, conn: Connection, now: float) -> None:
        """Forget every expired event (of keys nobody has used since)."""
        conn.execute(self.sql("DELETE FROM kv_events WHERE expires_at <= ?"), (now,))


class LogIds:
    """Log name → numeric id, cached once the log exists (ids never change)."""

    def __init__(self, statements: Statements) -> None:
        self._statements = statements
        self._ids: dict[str, int] = {}

    def get(self, conn: Connection, log: str) -> int | None:
        """The id of ``log`` over ``conn``, None while it does not exist."""
        found = self._ids.get(log)
        if found is None:
            found = self._statements.log_id(conn, log)
            if found is not None:
                self._ids[log] = found
        return found


class SqlSearchIndex(ABC):
    """:class:`keyless.storage.SearchIndex` over a ``search_index`` table; a backend supplies
    :meth:`add_many` (its own "insert unless present" statement and transaction)."""

    def __init__(self, connections: ThreadConnections[Any], statements: Statements) -> None:
        self._connections = connections
        self._statements = statements

    def add(self, log_name: str, key: str, index: int) -> None:
        """Record that entry ``index`` of ``log_name`` is found under ``key``."""
        self.add_many(log_name, [(key, index)])

    @abstractmethod
    def add_many(self, log_name: str, items: Sequence[tuple[str, int]]) -> None:
        """Record many (key, index) pairs in one transaction."""

    def lookup(self, log_name: str, key: str) -> list[int]:
        """The indexes recorded under ``key``, ascending."""
        with self._statements.errors("cannot read the search index"):
            return self._statements.search_lookup(self._connections.get(), log_name, key)


class SqlKeyValueStore(ABC):
    """:class:`keyless.storage.KeyValueStore` over the ``kv`` and ``kv_events`` tables; a
    backend supplies the atomic :meth:`put_if_absent` and the :meth:`events` transaction."""

    #: every this many reservations (per process), expired events of every key are deleted
    SWEEP_EVERY = 256

    def __init__(
        self,
        connections: ThreadConnections[Any],
        statements: Statements,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connections = connections
        self._statements = statements
        self._clock = clock
        self._reserved = itertools.count(1)

    @abstractmethod
    def events(self, keys: Sequence[str]) -> AbstractContextManager[Connection]:
        """A transaction over this thread's connection in which no other process or thread
        changes the events of ``keys`` (SQLite: the write lock; PostgreSQL: advisory locks)."""

    def reserve_event(
        self,
        namespace: str,
        limits: Sequence[tuple[str, int]],
        event: str,
        now: float,
        window: float,
    ) -> tuple[str, float] | None:
        """:meth:`keyless.storage.seam.EventWindows.reserve_event`, in one transaction."""
        sweep = next(self._reserved) % self.SWEEP_EVERY == 0
        keys = [f"{namespace}/{key}" for key, _limit in limits]
        with self._statements.errors("key-value store: events"), self.events(keys) as conn:
            if sweep:
                self._statements.events_sweep(conn, now)
            return self._statements.events_reserve(
                conn, namespace, limits, event, now=now, window=window
            )

    def withdraw_event(
        self, namespace: str, event: str, keys: Sequence[str], clear: Sequence[str] = ()
    ) -> None:
        """:meth:`keyless.storage.seam.EventWindows.withdraw_event`, in one transaction."""
        # no lock needed: removing events only ever lowers the counts a reservation sees
        with self._statements.errors("key-value store: events"), self.events(()) as conn:
            self._statements.events_withdraw(conn, namespace, event, keys, clear)

    @abstractmethod
    def put_if_absent(
        self, namespace: str, key: str, value: bytes, expires_at: float
    ) -> bytes | None:
        """Store ``value`` unless a live value exists; return that existing value, else None."""

    def get(self, namespace: str, key: str) -> bytes | None:
        """The live value under ``key`` (expired values read as absent)."""
        with self._statements.errors("key-value store"):
            return self._statements.kv_get(self._connections.get(), namespace, key, self._clock())

    def replace(
        self, namespace: str, key: str, expected: bytes, value: bytes, expires_at: float
    ) -> bool:
        """Store ``value`` if the live value under ``key`` is exactly ``expected`` (one atomic
        compare-and-set); whether it was."""
        with self._statements.errors("key-value store"):
            return self._statements.kv_replace(
                self._connections.get(), namespace, key, expected, value,
                expires_at=expires_at, now=self._clock(),
            )

    def delete(self, namespace: str, key: str) -> None:
        """Remove ``key`` (no error if absent)."""
        with self._statements.errors("key-value store"):
            self._statements.kv_delete(self._connections.get(), namespace, key)
