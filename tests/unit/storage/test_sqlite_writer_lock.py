"""Writers of one SQLite file take turns through WriterLock (keyless.storage.sqlite)."""

from __future__ import annotations

import fcntl
import os
import select
import threading
import time
from pathlib import Path

import pytest

from keyless.errors import StorageError
from keyless.storage import sqlite as sqlite_backend
from keyless.storage.sqlite import SQLiteBackend, WriterLock


def hold(path: Path) -> int:
    """Take the writer lock as another process would (its own open file description)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_a_write_waits_for_the_other_process_and_goes_on_once_it_lets_go(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "keyless.db")
    lock = tmp_path / "keyless.db-writer.lock"
    assert lock.stat().st_mode & 0o777 == 0o600
    other = hold(lock)
    stored = threading.Event()

    def write() -> None:
        assert backend.kv.put_if_absent("ns", "k", b"v", time.time() + 60) is None
        stored.set()

    writer = threading.Thread(target=write)
    writer.start()
    assert not stored.wait(0.3)  # the other process's turn
    fcntl.flock(other, fcntl.LOCK_UN)
    assert stored.wait(10)
    writer.join()
    os.close(other)
    backend.close()


def test_a_lock_held_too_long_fails_the_write_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "_BUSY_TIMEOUT", 0.2)
    writer = WriterLock(tmp_path / "x.db")
    other = hold(writer.path)
    started = time.monotonic()
    with pytest.raises(StorageError, match="held its write lock"), writer.held():
        pass
    assert time.monotonic() - started < 5
    os.close(other)
    with writer.held():  # free again
        pass


def test_a_forked_process_takes_its_own_turn(tmp_path: Path) -> None:
    """A worker forked after the lock file was opened must not share the parent's lock (an
    inherited descriptor would let both in at once)."""
    writer = WriterLock(tmp_path / "x.db")
    with writer.held():
        pass  # the parent's descriptor is open now and will be inherited
    go_read, go_write = os.pipe()
    done_read, done_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.read(go_read, 1)  # the parent holds its turn now
            with writer.held():
                os.write(done_write, b"child wrote")
        finally:
            os._exit(0)
    with writer.held():
        os.write(go_write, b"go")
        assert not _readable(done_read, 0.5), "the child wrote during the parent's turn"
    assert _readable(done_read, 10)
    assert os.read(done_read, 64) == b"child wrote"
    os.waitpid(pid, 0)
    for fd in (go_read, go_write, done_read, done_write):
        os.close(fd)


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])
