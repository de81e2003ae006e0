"""The embedded backend: SQLite (stdlib ``sqlite3``) in WAL mode + tiles as files.

Guarantees (see :mod:`keyless.storage`):

* **one sequencer at a time**: a sequencing session is a ``BEGIN IMMEDIATE`` transaction, which
  holds SQLite's single write lock across every process that opens the same file;
* **writers take turns promptly**: SQLite's own busy handler retries a locked database after
  sleeps that grow to 100 ms, so with several processes writing (``--workers N``) a writer often
  slept long after the lock was free (p99 of certificate issuance 300 to 870 ms at 2 workers).
  Every write transaction therefore first takes :class:`WriterLock` (a mutex in the process, an
  ``flock`` across processes retried every millisecond at most, up to the same 30 s bound);
* **durability**: ``journal_mode=WAL`` with ``synchronous=FULL``. ``NORMAL`` would survive a process
  crash but can lose the last transactions on power loss, and ``add`` promises durability to the
  caller; with batching one WAL fsync per batch costs ~12 µs per entry (targets.md §A), so FULL is
  affordable;
* **checkpoint compare-and-swap**: ``UPDATE logs … WHERE size = old_size`` in the transaction that
  inserts the batch's entries;
* **tiles**: files in ``data_dir`` (:class:`keyless.storage.files.FileTileStore`), written and
  fsynced inside the sequencing transaction, i.e. before the head that references them commits. A
  crash after the tiles but before the commit leaves only tiles beyond the committed size (or
  byte-identical ones), which the next batch overwrites.

Every thread gets its own connection; the engine confines each log's sequencing to one thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

from keyless.errors import ConfigError, Conflict, StorageError
from keyless.storage.files import FileTileStore
from keyless.storage.migrations import SQLITE, check_not_newer
from keyless.storage.model import Batch, LogHead, StoredEntry
from keyless.storage.sql import (
    LogIds,
    SqlKeyValueStore,
    SqlSearchIndex,
    Statements,
    ThreadConnections,
    stored_columns,
)

SHIFT = 40  # rowid = log_id << 40 | index
_CHUNK = 500


def database_path(url: str) -> Path:
    """The file of a ``sqlite:///relative/or/absolute/path.db`` URL (``sqlite:////abs`` too)."""
    parsed = urlparse(url)
    raw = unquote(parsed.netloc + parsed.path)
    if raw.startswith("//"):
        raw = raw[1:]
    if not raw or raw == "/":
        raise ConfigError(f"no database path in {url!r}")
    return Path(raw)


#: the files of one SQLite database: the database itself, its WAL and shared-memory index, and
#: the lock writers take turns with (:class:`WriterLock`)
_SIBLINGS = ("", "-wal", "-shm", "-journal", "-writer.lock")


def restrict_database_files(path: Path) -> None:
    """Create the database file owner-only (0600) and narrow it and its WAL/SHM files if an older
    version or another tool left them wider: they hold the instance's state, and whoever reads
    them reads what the key-value table keeps. (SQLite creates -wal/-shm with the database
    file's mode, so they follow once it is 0600.)

    Never opens an existing database file: closing any descriptor of a file drops every POSIX
    lock this process holds on it, including those of live SQLite connections."""
    try:
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        for suffix in _SIBLINGS:
            sibling = path.with_name(path.name + suffix)
            with contextlib.suppress(FileNotFoundError):
                if sibling.stat().st_mode & 0o077:
                    sibling.chmod(0o600)
    except OSError as exc:
        raise ConfigError(
            f"cannot make the database file {path} owner-only (mode 0600): {exc.strerror or exc}"
        ) from exc


#: seconds a write waits for the database (SQLite's busy timeout and the writer lock alike)
_BUSY_TIMEOUT = 30.0
_LOCK_STEP_MIN, _LOCK_STEP_MAX = 0.00005, 0.001


class WriterLock:
    """The turn to write one database file: a mutex among this process's threads, then an
    exclusive ``flock`` on ``NAME.db-writer.lock`` among processes.

    The lock file is opened per process (a descriptor inherited across ``fork`` would share its
    lock with the parent). The ``flock`` is tried without blocking in steps of at most 1 ms, so
    that the wait stays bounded (:data:`_BUSY_TIMEOUT`, then :class:`StorageError`: a process
    stuck in a transaction makes writes fail, not hang) while a released lock is taken within a
    millisecond. The kernel drops the lock of a process that dies, even on ``kill -9``.
    """

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + "-writer.lock")
        self._mutex = threading.Lock()
        self._fd = -1
        self._pid = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        deadline = time.monotonic() + _BUSY_TIMEOUT
        if not self._mutex.acquire(timeout=_BUSY_TIMEOUT):
            raise StorageError("the database is busy: a write of this process did not finish")
        try:
            fd = self._descriptor()
            self._take(fd, deadline)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._mutex.release()

    def _descriptor(self) -> int:
        if self._pid != os.getpid():
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise StorageError(f"cannot open {self.path}: {exc.strerror or exc}") from exc
            self._pid = os.getpid()
        return self._fd

    @staticmethod
    def _take(fd: int, deadline: float) -> None:
        step = _LOCK_STEP_MIN
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StorageError(
                        "the database is busy: another process has held its write lock for "
                        f"{_BUSY_TIMEOUT:.0f} s"
                    ) from None
                time.sleep(step)
                step = min(step * 2, _LOCK_STEP_MAX)


class _Connection(sqlite3.Connection):
    """A connection that knows its database's :class:`WriterLock` (set by :func:`_connect`)."""

    writer: WriterLock


def _connect(path: Path, writer: WriterLock) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT, isolation_level=None,
                           check_same_thread=False, factory=_Connection)
    conn.writer = writer
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT * 1000)}")
    conn.execute("PRAGMA cache_size=-65536")
    # checkpoint the WAL every ~40 MB instead of ~4 MB: fewer checkpoints on the append path
    # (measured ~15 % cheaper per entry with 2,000-entry batches; bench/log_append.py)
    conn.execute("PRAGMA wal_autocheckpoint=10000")
    return conn


_SQL = Statements("?", sqlite3.Error)
_Connections = ThreadConnections[sqlite3.Connection]


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction (``BEGIN IMMEDIATE``), in this database's writer turn."""
    if not isinstance(conn, _Connection):  # every connection comes from _connect
        raise TypeError("a write transaction needs a connection made by _connect")
    with conn.writer.held(), _write_transaction(conn):
        yield conn


@contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot begin a transaction: {exc}") from exc
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    else:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StorageError(f"cannot commit: {exc}") from exc


class _SQLiteSession:
    def __init__(self, store: SQLiteLogStore, conn: sqlite3.Connection, log: str) -> None:
        self._store = store
        self._conn = conn
        self._log = log
        self._log_id: int | None = store.ids.get(conn, log)
        self.seen: LogHead | None = None  # the head as this session last read it
        self.committed: Batch | None = None

    def head(self) -> LogHead | None:
        self.seen = _SQL.head(self._conn, self._log)
        return self.seen

    def find(self, dedup_keys: Sequence[bytes]) -> dict[bytes, tuple[int, int]]:
        if self._log_id is None:
            return {}
        base = self._log_id << SHIFT
        found: dict[bytes, tuple[int, int]] = {}
        for i in range(0, len(dedup_keys), _CHUNK):
            chunk = dedup_keys[i : i + _CHUNK]
            rows = self._conn.execute(
                # only "?" placeholders are formatted in; the keys are bound parameters
                "SELECT dedup_key, id, integrated_time FROM entries "  # noqa: S608
                f"WHERE log_id = ? AND dedup_key IN ({','.join('?' * len(chunk))})",
                (self._log_id, *chunk),
            )
            for key, rowid, itime in rows:
                found[bytes(key)] = (rowid - base, itime)
        return found

    def read_tile(self, path: str) -> bytes | None:
        return self._store.tiles.read(self._log, path)

    def entries(self, start: int, end: int) -> list[StoredEntry]:
        return self._store.entries_with(self._conn, self._log_id, start, end)

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        if self._log_id is None:
            return []
        base = self._log_id << SHIFT
        rows = self._conn.execute(
            "SELECT COALESCE(leaf_hash, dedup_key) FROM entries "
            "WHERE id >= ? AND id < ? ORDER BY id",
            (base + start, base + end),
        )
        return [bytes(r[0]) for r in rows]

    def commit(self, batch: Batch) -> None:
        conn = self._conn
        head = batch.head
        try:
            if self._log_id is None:
                if batch.old_size != 0:
                    raise Conflict(f"log {self._log} does not exist")
                cursor = conn.execute(
                    "INSERT INTO logs (name, size, root_hash, checkpoint) VALUES (?, ?, ?, ?)",
                    (self._log, head.size, head.root_hash, head.checkpoint),
                )
                assert cursor.lastrowid is not None
                self._log_id = cursor.lastrowid
            elif not _SQL.swap_head(conn, self._log_id, batch):
                raise Conflict(
                    f"log {self._log}: the checkpoint moved away from size {batch.old_size}"
                )
            tiles_written = self._store.tiles.start_writing(self._log, batch.tiles)
            base = self._log_id << SHIFT
            try:
                self._insert(base, batch)
            except BaseException:
                # never let tile writes of a failed batch outlive the write lock: another
                # sequencer may write the same paths as soon as the transaction is rolled back
                with contextlib.suppress(StorageError):
                    tiles_written()
                raise
            tiles_written()  # durable before the transaction (and so the head) commits
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"log {self._log}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"log {self._log}: cannot commit a batch: {exc}") from exc
        self.committed = batch

    def _insert(self, base: int, batch: Batch) -> None:
        self._conn.executemany(
            "INSERT INTO entries (id, log_id, dedup_key, integrated_time, leaf, leaf_hash, "
            "bundle_entry) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (base + e.index, self._log_id, e.dedup_key, e.integrated_time, e.leaf,
                 *stored_columns(e))
                for e in batch.entries
            ],
        )


class SQLiteLogStore:
    """The log store of :class:`SQLiteBackend`."""

    def __init__(self, connections: _Connections, tiles: FileTileStore) -> None:
        self._connections = connections
        self.tiles = tiles
        self.ids = LogIds(_SQL)
        self._reconciled: set[str] = set()

    @contextmanager
    def sequencing(self, log: str) -> Iterator[_SQLiteSession]:
        conn = self._connections.get()
        with _transaction(conn):
            session = _SQLiteSession(self, conn, log)
            yield session
        committed = session.committed
        if committed is not None:
            self.tiles.publish_checkpoint(log, committed.head.checkpoint)
            self.tiles.remove_dirs(log, committed.obsolete)
            self._reconciled.add(log)
        elif session.seen is not None and log not in self._reconciled:
            self._reconcile_checkpoint(log)

    def _reconcile_checkpoint(self, log: str) -> None:
        """Make ``<log>/checkpoint`` the committed one again after a crash.

        The static copy is written just after the commit, so a ``kill -9`` in between leaves
        the previous checkpoint in the folder while the database holds a newer one; without this
        a static reader would not see the last acknowledged entries until the next write. The
        engine opens a sequencing session at start (recovery), which lands here once per log.
        The head is read again under the file's lock: another process serving the log
        (``--workers N``) may have committed a newer one since this session's.
        """

        def committed() -> bytes | None:
            head = self.head(log)
            return None if head is None else head.checkpoint

        self.tiles.reconcile_checkpoint(log, committed)
        self._reconciled.add(log)

    def head(self, log: str) -> LogHead | None:
        with _SQL.errors(f"cannot read the head of log {log}"):
            return _SQL.head(self._connections.get(), log)

    def read_tile(self, log: str, path: str) -> bytes | None:
        return self.tiles.read(log, path)

    def entries_with(
        self, conn: sqlite3.Connection, log_id: int | None, start: int, end: int
    ) -> list[StoredEntry]:
        """Entries of the log with ``log_id`` in ``[start, end)`` over ``conn``."""
        if log_id is None or end <= start:
            return []
        base = log_id << SHIFT
        rows = conn.execute(
            "SELECT id, leaf, bundle_entry, integrated_time FROM entries "
            "WHERE id >= ? AND id < ? ORDER BY id",
            (base + max(start, 0), base + end),
        )
        return [
            StoredEntry(rowid - base, bytes(leaf), bytes(bundle if bundle is not None else leaf), t)
            for rowid, leaf, bundle, t in rows
        ]

    def entries(self, log: str, start: int, end: int) -> list[StoredEntry]:
        conn = self._connections.get()
        with _SQL.errors(f"cannot read entries of log {log}"):
            return self.entries_with(conn, self.ids.get(conn, log), start, end)

    def index_of(self, log: str, key: bytes) -> int | None:
        conn = self._connections.get()
        with _SQL.errors(f"cannot look up an entry of log {log}"):
            return self._index_of(conn, log, key)

    def _index_of(self, conn: sqlite3.Connection, log: str, key: bytes) -> int | None:
        log_id = self.ids.get(conn, log)
        if log_id is None:
            return None
        row_id = _SQL.first_entry_id(conn, log_id, key, "id")
        return None if row_id is None else row_id - (log_id << SHIFT)

    def logs(self) -> list[str]:
        with _SQL.errors("cannot list the logs"):
            return _SQL.log_names(self._connections.get())

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Pin this thread's reads to one committed state (a WAL read transaction), so that an
        offline-style check can run beside a live server. Tile files are not versioned: a
        partial tile that a later batch completed may be gone (read the full tile instead)."""
        conn = self._connections.get()
        with _SQL.errors("cannot open a read snapshot"):
            conn.execute("BEGIN")  # deferred: the first read below fixes the snapshot
            conn.execute("SELECT count(*) FROM logs").fetchone()
        try:
            yield
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")


class SQLiteSearchIndex(SqlSearchIndex):
    """The search index of :class:`SQLiteBackend`."""

    def add_many(self, log_name: str, items: Sequence[tuple[str, int]]) -> None:
        errors = _SQL.errors("cannot update the search index")
        with errors, _transaction(self._connections.get()) as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO search_index (log, key, idx) VALUES (?, ?, ?)",
                [(log_name, key, index) for key, index in items],
            )


class SQLiteKeyValueStore(SqlKeyValueStore):
    """The expiring key-value store of :class:`SQLiteBackend`; its event windows are changed
    under SQLite's one write lock (``BEGIN IMMEDIATE``), which every process shares."""

    def events(self, keys: Sequence[str]) -> AbstractContextManager[sqlite3.Connection]:
        return _transaction(self._connections.get())

    def put_if_absent(
        self, namespace: str, key: str, value: bytes, expires_at: float
    ) -> bytes | None:
        now = self._clock()
        with _SQL.errors("key-value store"), _transaction(self._connections.get()) as conn:
            row = conn.execute(
                "SELECT value, expires_at FROM kv WHERE namespace = ? AND key = ?",
                (namespace, key),
            ).fetchone()
            if row is not None and row[1] > now:
                return bytes(row[0])
            conn.execute(
                "INSERT OR REPLACE INTO kv (namespace, key, value, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (namespace, key, value, expires_at),
            )
            return None


class SQLiteBackend:
    """SQLite database file + tile folder."""

    def __init__(self, path: Path, *, data_dir: Path | None = None, fsync: bool = True) -> None:
        self.url = f"sqlite:///{path}"
        path.parent.mkdir(parents=True, exist_ok=True)
        restrict_database_files(path)
        writer = WriterLock(path)
        self._connections = _Connections(lambda: _connect(path, writer))
        self._migrate(self._connections.get())
        restrict_database_files(path)  # the -wal/-shm files exist now
        tiles = FileTileStore((data_dir or path.parent) / "logs", fsync=fsync)
        self.log_store = SQLiteLogStore(self._connections, tiles)
        self.search_index = SQLiteSearchIndex(self._connections, _SQL)
        self.kv = SQLiteKeyValueStore(self._connections, _SQL)

    @classmethod
    def from_url(cls, url: str, *, data_dir: Path | None = None) -> SQLiteBackend:
        """``sqlite:///relative/or/absolute/path.db`` (``sqlite:////abs`` also accepted)."""
        return cls(database_path(url), data_dir=data_dir)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        with _transaction(conn):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            check_not_newer(version, len(SQLITE), "the SQLite database")
            for number, script in enumerate(SQLITE[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    def close(self) -> None:
        self.log_store.tiles.close()
        self._connections.close()
