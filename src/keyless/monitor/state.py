"""The monitor's state: an append-only SQLite history of the checkpoints it verified.

One row per verified checkpoint of a log: its size, root hash and the whole signed note as it was
served. Rows are never updated or deleted (triggers refuse it), every write is committed with
``synchronous=FULL`` before the monitor reports it, and the file is created mode 0600. On load the
latest row's note is verified again with the log's key, so a state file edited by hand (a changed
root, size or note) is detected rather than trusted.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from keyless.errors import ConfigError

__all__ = ["MonitorState", "Verified"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    log TEXT NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    edge BLOB,
    verified_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_log ON checkpoints (log, id);
CREATE TRIGGER IF NOT EXISTS checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'the checkpoint history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'the checkpoint history is append-only'); END;
"""


@dataclass(frozen=True)
class Verified:
    """A checkpoint the monitor verified: tree size, root hash and the signed note it came in."""

    size: int
    root: bytes
    note: str
    edge: bytes | None = None
    """The tree's right edge (compact range hashes) for logs without tiles (Rekor v1)."""


class MonitorState:
    """The ``--state FILE`` database (created 0600 in a directory that must exist)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.parent.is_dir():
            raise ConfigError(f"--state {str(path)!r}: directory {str(path.parent)!r} not found")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open --state {str(path)!r}: {exc}") from exc

    @property
    def evidence_dir(self) -> Path:
        """Where inconsistency evidence is kept: ``<state>.evidence/`` next to the state file."""
        return self.path.with_name(self.path.name + ".evidence")

    def latest(self, log: str) -> Verified | None:
        """The last checkpoint verified for ``log``, or None before its first run."""
        try:
            row = self._db.execute(
                "SELECT size, root, note, edge FROM checkpoints WHERE log = ? "
                "ORDER BY id DESC LIMIT 1",
                (log,),
            ).fetchone()
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot read --state {str(self.path)!r}: {exc}") from exc
        if row is None:
            return None
        size, root, note, edge = row
        if not isinstance(size, int) or not isinstance(root, bytes) or not isinstance(note, str):
            return Verified(-1, b"", str(note))  # a mangled row: the caller's check refuses it
        return Verified(size, root, note, edge if isinstance(edge, bytes) else None)

    def append(self, log: str, verified: Verified) -> None:
        """Record a verified checkpoint durably (committed and synced before returning)."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            self._db.execute(
                "INSERT INTO checkpoints (log, size, root, note, edge, verified_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (log, verified.size, verified.root, verified.note, verified.edge, now),
            )  # autocommit: one statement, one synced transaction
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot write --state {str(self.path)!r}: {exc}") from exc

    def close(self) -> None:
        self._db.close()
