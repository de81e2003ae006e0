"""Ownership of a data directory by one ``keyless serve`` process (contracts.md §2).

"A second process pointed at the same DIR must not corrupt it (refuse or coordinate)." On the
embedded SQLite default the directory holds the database, so a second process is refused: it
cannot take the exclusive ``flock`` on ``DIR/keyless.lock``. The SQLite database file is locked
too (:func:`database_lock`), because a second process with *another* data directory but the same
``--database sqlite:///…`` would otherwise sequence into the same logs while writing their tiles
into a different folder. On PostgreSQL the database is the shared state and several processes
are expected; the lock is then only held while first-start initialisation creates files, so
concurrent first starts serialise instead of racing.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from keyless.errors import ConfigError
from keyless.storage.files import process_alive

LOCK_NAME = "keyless.lock"

#: how long a start waits for the workers of a dead supervisor to let go of its lock (seconds)
ORPHANED_WORKERS_WAIT = 15.0


def _alive(owner: str) -> bool:
    """Whether the process the lock file names still exists (unknown owners count as alive)."""
    return not owner.isdigit() or process_alive(int(owner))


class DataDirLock:
    """An exclusive, advisory, process-lifetime lock on a data directory.

    ``flock`` locks vanish when the process dies (even on ``kill -9``), so a crash never leaves a
    stale lock behind. The lock file records the owner's PID to make the refusal message useful.
    """

    def __init__(self, data_dir: Path, *, lock_file: Path | None = None) -> None:
        self.path = lock_file if lock_file is not None else data_dir / LOCK_NAME
        self._what = f"data directory {data_dir}"
        self._fd: int | None = None

    def acquire(self, *, wait: bool = False, timeout: float | None = None) -> None:
        """Take the lock, or raise :class:`ConfigError` naming the owner.

        ``wait`` waits for the owner to let go — for at most ``timeout`` seconds when given, so
        that a process which holds the lock for its lifetime (a SQLite ``serve``) turns a
        newcomer away with a message instead of blocking it forever.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                blocking = wait and deadline is None
                fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
                if not wait and not _alive(owner):
                    # the owner was a --workers supervisor that died: its workers, which share
                    # the lock, are stopping with it (they follow their parent); wait for them
                    wait, deadline = True, time.monotonic() + ORPHANED_WORKERS_WAIT
                if wait and deadline is not None and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                os.close(fd)
                raise ConfigError(
                    f"{self._what} is in use by keyless serve (pid {owner}); "
                    "stop it first, or use PostgreSQL (--database postgresql://…) to run several"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def describe(self, what: str) -> DataDirLock:
        """Name the locked resource differently in the refusal message (e.g. a database)."""
        self._what = what
        return self

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire(wait=True)
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.release()


def secure_data_dir(data_dir: Path) -> None:
    """Create the data directory, or tighten an existing one, to mode 0700 (and ``keys/``).

    It holds the database, keys and config of the instance: a directory an older version (or
    the operator) left at 0755 is narrowed on every start.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        data_dir.chmod(0o700)
        keys = data_dir / "keys"
        if keys.is_dir():
            keys.chmod(0o700)
    except OSError as exc:
        raise ConfigError(
            f"cannot make the data directory {data_dir} owner-only (mode 0700): "
            f"{exc.strerror or exc}"
        ) from exc


def database_lock(database_file: Path, data_dir: Path) -> DataDirLock | None:
    """The lock guarding a SQLite database file, or None when the data-directory lock covers it.

    The database ``DIR/keyless.db`` (the default) is covered by ``DIR/keyless.lock``, which is
    exactly what a process with that data directory holds; any other ``NAME.db`` is guarded by
    ``NAME.db.lock`` beside it. Either way, every process using one database file contends for
    one lock file, whatever its own data directory.
    """
    database_file = database_file.resolve()
    if database_file.name == "keyless.db":
        lock_file = database_file.parent / LOCK_NAME
    else:
        lock_file = database_file.with_name(database_file.name + ".lock")
    if lock_file == (data_dir / LOCK_NAME).resolve():
        return None
    return DataDirLock(database_file.parent, lock_file=lock_file).describe(
        f"database {database_file}"
    )
