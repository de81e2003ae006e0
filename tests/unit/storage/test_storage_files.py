"""The file tile store and the storage URL handling."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from keyless.errors import ConfigError, InvalidInput, StorageError
from keyless.storage import open_backend
from keyless.storage.files import STALE_AFTER, FileTileStore
from keyless.storage.memory import MemoryBackend
from keyless.storage.sqlite import SQLiteBackend


def test_tiles_round_trip_atomically(tmp_path: Path) -> None:
    store = FileTileStore(tmp_path)
    store.write_many("log", {"tile/0/000.p/3": b"a" * 96, "tile/entries/x001/000": b"bundle"})
    assert store.read("log", "tile/0/000.p/3") == b"a" * 96
    assert store.read("log", "tile/entries/x001/000") == b"bundle"
    assert store.read("log", "tile/0/001") is None
    store.write_many("log", {"tile/0/000.p/3": b"b" * 96})  # overwrite by rename
    assert store.read("log", "tile/0/000.p/3") == b"b" * 96
    leftovers = [p for p in (tmp_path / "log").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    store.publish_checkpoint("log", b"checkpoint\n")
    assert (tmp_path / "log" / "checkpoint").read_bytes() == b"checkpoint\n"
    store.remove_dirs("log", ["tile/0/000.p"])
    store.close()  # waits for the background removal
    assert not (tmp_path / "log" / "tile" / "0" / "000.p").exists()


@pytest.mark.parametrize("path", ["../escape", "/abs", "tile//0", "tile/./0", ""])
def test_paths_cannot_escape(tmp_path: Path, path: str) -> None:
    store = FileTileStore(tmp_path)
    with pytest.raises(InvalidInput):
        store.read("log", path)
    store.close()


def test_write_errors_are_storage_errors(tmp_path: Path) -> None:
    store = FileTileStore(tmp_path)
    (tmp_path / "log").write_bytes(b"a file where a folder should be")
    with pytest.raises(StorageError):
        store.write_many("log", {"tile/0/000": b"x"})
    store.close()


def test_urls(tmp_path: Path) -> None:
    assert isinstance(open_backend("memory://"), MemoryBackend)
    for url in (f"sqlite:///{tmp_path}/a.db", f"sqlite:////{str(tmp_path).lstrip('/')}/b.db"):
        backend = open_backend(url, data_dir=tmp_path / "data")
        assert isinstance(backend, SQLiteBackend)
        backend.close()
    assert (tmp_path / "a.db").exists() and (tmp_path / "b.db").exists()
    with pytest.raises(ConfigError):
        open_backend("mysql://nope")
    with pytest.raises(ConfigError):
        open_backend("sqlite://")


def test_sqlite_is_durable_by_configuration(tmp_path: Path) -> None:
    import sqlite3

    backend = open_backend(f"sqlite:///{tmp_path}/k.db")
    backend.close()
    conn = sqlite3.connect(tmp_path / "k.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
    conn.close()


def test_temporaries_of_killed_writers_are_removed_on_open(tmp_path: Path) -> None:
    """A ``kill -9`` mid-write leaves a temporary file; it never sits among the served tiles
    and is removed when the store is opened again, while a live process's is kept."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    store = FileTileStore(tmp_path)
    store.write_many("log", {"tile/0/000.p/1": b"a" * 32})
    store.close()
    stale = tmp_path / ".tmp" / f"{dead.stdout.strip()}.7.tmp"
    live = tmp_path / ".tmp" / f"{os.getpid()}.8.tmp"
    # A dead PID's fresh file may belong to a live process of another PID namespace (a
    # container sharing the volume, fsck from the host): only old files go.
    fresh = tmp_path / ".tmp" / f"{dead.stdout.strip()}.9.tmp"
    for path, data in ((stale, b"half a tile"), (live, b"being written"), (fresh, b"other ns")):
        path.write_bytes(data)
    old = time.time() - STALE_AFTER - 60
    os.utime(stale, (old, old))
    os.utime(live, (old, old))
    FileTileStore(tmp_path).close()
    assert not stale.exists()
    assert live.exists() and fresh.exists()
    assert sorted(p.name for p in (tmp_path / "log").rglob("*")) == ["0", "000.p", "1", "tile"]
