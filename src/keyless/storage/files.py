"""Tiles and entry bundles as files in a data directory (the embedded backend's tile store).

Layout: ``<root>/<log>/tile/…`` exactly as C2SP tlog-tiles names them, plus
``<root>/<log>/checkpoint``, so the folder can be served as static files by any web server
(architecture.md: "reads are static files"). Durability follows the POSIX tile pattern of
targets.md §A: write a temporary file, fsync it, rename it over the final name, then fsync the
directory — so a tile is either absent or whole, and a crash never leaves a torn tile. The fsyncs
of one batch run in parallel on a small thread pool (fsync releases the GIL), because they are most
of the cost of a batch.

Temporary files live in ``<root>/.tmp/`` (no log name starts with a dot), named after the writing
process, so the tile folders served to readers never hold one; those a ``kill -9`` left behind are
removed when a store is opened, unless their process is still alive (``keyless log fsck`` may open
the store of a running server).
"""

from __future__ import annotations

import fcntl
import itertools
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from keyless.errors import InvalidInput, StorageError


def _check_path(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"bad tile path {path!r}")
    return path


def clear_temporaries(root: Path) -> None:
    """Remove every temporary file of the tile folder ``root`` (``root/.tmp``).

    Only for the exclusive owner of the data directory, before it writes anything: then no other
    process can have a write in progress there, whatever its PID namespace.
    """
    try:
        leftovers = list((root / ".tmp").iterdir())
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageError(f"cannot list {root / '.tmp'}: {exc}") from exc
    for path in leftovers:
        path.unlink(missing_ok=True)


#: Age after which a dead process's temporary file is removed (seconds).
STALE_AFTER = 600.0


class FileTileStore:
    """Tiles under ``root/<log>/``; writes are durable when :meth:`write_many` returns."""

    def __init__(self, root: Path, *, fsync: bool = True, threads: int = 8) -> None:
        self.root = root
        self._fsync = fsync
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="keyless-tiles")
        self._dirs: set[Path] = set()
        self._lock = threading.Lock()
        self._tmp = root / ".tmp"
        self._names = itertools.count()
        self._token = secrets.token_hex(4)  # two stores in one process never share a name
        self._remove_stale_temporaries()

    def _temporary(self) -> Path:
        """A fresh temporary file name, unique to this process and call."""
        self._mkdir(self._tmp)
        return self._tmp / f"{os.getpid()}.{self._token}.{next(self._names)}.tmp"

    def _remove_stale_temporaries(self) -> None:
        """Delete the temporary files of processes that are gone (killed mid-write).

        Only files older than :data:`STALE_AFTER` go: a write takes milliseconds, and a process
        in another PID namespace (a container sharing the volume, ``keyless log fsck`` from the
        host) may be alive although its PID is not.
        """
        cutoff = time.time() - STALE_AFTER
        try:
            leftovers = list(self._tmp.iterdir())
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"cannot list {self._tmp}: {exc}") from exc
        for path in leftovers:
            pid = path.name.split(".", 1)[0]
            if pid.isdigit() and process_alive(int(pid)):
                continue
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
            except FileNotFoundError:
                continue

    def _file(self, log: str, path: str) -> Path:
        return self.root / log / _check_path(path)

    def read(self, log: str, path: str) -> bytes | None:
        """The bytes of a tile, or None if it does not exist."""
        try:
            return self._file(log, path).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StorageError(f"cannot read tile {path}: {exc}") from exc

    def _mkdir(self, directory: Path) -> None:
        with self._lock:
            known = directory in self._dirs
        if not known:
            directory.mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._dirs.add(directory)

    def _write_one(self, target: Path, data: bytes) -> None:
        self._mkdir(target.parent)
        tmp = self._temporary()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)

    def _sync_dir(self, directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_many(self, log: str, tiles: Mapping[str, bytes]) -> None:
        """Write every tile durably (temp + fsync + rename + directory fsync), in parallel."""
        self.start_writing(log, tiles)()

    def start_writing(self, log: str, tiles: Mapping[str, bytes]) -> Callable[[], None]:
        """Start :meth:`write_many` in the background; call the result to wait for durability.

        Lets the SQLite backend insert the batch's entries while the tiles are being fsynced.
        """
        if not tiles:
            return lambda: None
        targets = [(self._file(log, path), data) for path, data in tiles.items()]
        writes = [self._pool.submit(self._write_one, target, data) for target, data in targets]

        def wait() -> None:
            try:
                for future in writes:
                    future.result()
                if self._fsync:
                    directories = {target.parent for target, _ in targets}
                    # parents of new folders too, so the folders themselves survive a crash
                    directories |= {d.parent for d in directories if d.parent != self.root}
                    list(self._pool.map(self._sync_dir, directories))
            except OSError as exc:
                raise StorageError(f"cannot write tiles of log {log}: {exc}") from exc

        return wait

    def remove_dirs(self, log: str, prefixes: Iterable[str]) -> None:
        """Best-effort removal of obsolete partial-tile folders (``tile/0/000.p``).

        Runs in the background: it is garbage collection, not part of the commit, and readers
        never need these folders once the full tile is committed.
        """
        for prefix in prefixes:
            self._pool.submit(shutil.rmtree, self._file(log, prefix), True)

    def publish_checkpoint(self, log: str, checkpoint: bytes) -> None:
        """Write ``<log>/checkpoint`` for static serving (the database holds the durable copy).

        Several processes commit batches of one log (``keyless serve --workers N``), each writing
        this file just after its commit: a process that writes late must not put back an older
        checkpoint than one already there, so a smaller tree's checkpoint never replaces it.
        """
        with self._checkpoint_lock(log) as target:
            if _tree_size(self.read(log, "checkpoint")) <= _tree_size(checkpoint):
                self._replace_checkpoint(log, target, checkpoint)

    def reconcile_checkpoint(self, log: str, committed: Callable[[], bytes | None]) -> None:
        """Make ``<log>/checkpoint`` the ``committed()`` one (read under the file's lock, so that
        no process that committed meanwhile is overtaken), even if that is an older tree."""
        with self._checkpoint_lock(log) as target:
            checkpoint = committed()
            if checkpoint is not None and self.read(log, "checkpoint") != checkpoint:
                self._replace_checkpoint(log, target, checkpoint)

    @contextmanager
    def _checkpoint_lock(self, log: str) -> Iterator[Path]:
        """An exclusive lock (across processes) on ``<log>/checkpoint``: ``flock`` on its folder."""
        directory = self.root / log
        self._mkdir(directory)
        try:
            fd = os.open(directory, os.O_RDONLY)
        except OSError as exc:
            raise StorageError(f"cannot publish the checkpoint of log {log}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield directory / "checkpoint"
        finally:
            os.close(fd)  # releases the lock

    def _replace_checkpoint(self, log: str, target: Path, checkpoint: bytes) -> None:
        tmp = self._temporary()
        try:
            tmp.write_bytes(checkpoint)
            os.replace(tmp, target)
        except OSError as exc:
            raise StorageError(f"cannot publish the checkpoint of log {log}: {exc}") from exc

    def close(self) -> None:
        """Stop the writer threads."""
        self._pool.shutdown(wait=True)


def _tree_size(checkpoint: bytes | None) -> int:
    """The tree size a checkpoint names (its second line, C2SP tlog-checkpoint); -1 if none."""
    try:
        return int(checkpoint.split(b"\n", 2)[1]) if checkpoint else -1
    except (IndexError, ValueError):
        return -1


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (signal 0 checks without sending anything)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
