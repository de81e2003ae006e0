"""The witness's durable state: per log, the latest checkpoint it cosigned; and the evidence.

One SQLite file (``DIR/witness.db``, mode 0600) in WAL mode with ``synchronous=FULL``, so a
checkpoint the witness answered for survives ``kill -9`` and power loss (C2SP tlog-witness: the
new checkpoint MUST be persisted before responding). :meth:`WitnessStore.advance` is the
compare-and-swap the spec asks for: it moves a log from the size the request was checked
against to the new checkpoint in one ``BEGIN IMMEDIATE`` transaction, and reports the current
size instead when another request moved it first.

Tables: ``logs(origin, size, root, note)`` — ``note`` is what monitors fetch (the log's verified
signatures and this witness's cosignatures); ``evidence(origin, received, reason, body)`` —
requests whose checkpoint was validly signed by the log but inconsistent with what the witness
cosigned (a fork or a rollback), kept as proof of the log's misbehaviour.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from keyless.errors import StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note BLOB
);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    received REAL NOT NULL,
    reason TEXT NOT NULL,
    body BLOB NOT NULL
);
"""
#: evidence rows kept per log (the oldest conflicts are the ones that matter; later ones repeat)
MAX_EVIDENCE_PER_LOG = 1000


@dataclass(frozen=True)
class LogState:
    """What the witness last cosigned for one log (size 0 and no note: never)."""

    origin: str
    size: int
    root: bytes
    note: bytes | None


class WitnessStore:
    """Durable witness state in ``path`` (created 0600 in a 0700 directory)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
            os.close(fd)
        os.chmod(path, 0o600)
        self._local = threading.local()
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, isolation_level=None, timeout=10)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open the witness database: {exc}") from exc
            self._local.db = db
        return db

    def state(self, origin: str) -> LogState:
        """The latest cosigned state of ``origin`` (size 0, empty root if never cosigned)."""
        row = self._connect().execute(
            "SELECT size, root, note FROM logs WHERE origin = ?", (origin,)
        ).fetchone()
        if row is None:
            return LogState(origin, 0, b"", None)
        return LogState(origin, int(row[0]), bytes(row[1]), None if row[2] is None else row[2])

    def advance(
        self, origin: str, old_size: int, size: int, root: bytes, note: bytes
    ) -> int | None:
        """Store ``(size, root, note)`` if the log is still at ``old_size``.

        None on success; otherwise the size another request stored first (the caller answers
        409 with it).
        """
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT size FROM logs WHERE origin = ?", (origin,)).fetchone()
                current = 0 if row is None else int(row[0])
                if current != old_size:
                    db.execute("ROLLBACK")
                    return current
                db.execute(
                    "INSERT INTO logs(origin, size, root, note) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(origin) DO UPDATE SET size = excluded.size, "
                    "root = excluded.root, note = excluded.note",
                    (origin, size, root, note),
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StorageError(f"witness database write failed: {exc}") from exc
        return None

    def keep_evidence(self, origin: str, reason: str, body: bytes) -> None:
        """Record a validly signed but inconsistent checkpoint request (bounded per log)."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            count = db.execute(
                "SELECT COUNT(*) FROM evidence WHERE origin = ?", (origin,)
            ).fetchone()[0]
            if count < MAX_EVIDENCE_PER_LOG:
                db.execute(
                    "INSERT INTO evidence(origin, received, reason, body) VALUES (?, ?, ?, ?)",
                    (origin, time.time(), reason, body),
                )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StorageError(f"witness database write failed: {exc}") from exc

    def evidence(self, origin: str) -> list[tuple[float, str, bytes]]:
        """The evidence kept for ``origin``: (received time, reason, request body), oldest first."""
        rows = self._connect().execute(
            "SELECT received, reason, body FROM evidence WHERE origin = ? ORDER BY id", (origin,)
        ).fetchall()
        return [(float(r[0]), str(r[1]), bytes(r[2])) for r in rows]

    def close(self) -> None:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
