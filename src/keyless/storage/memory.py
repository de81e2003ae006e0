"""In-memory backend for tests, with fault injection.

It keeps the same guarantees as the durable backends (one sequencer per log, atomic commit with a
checkpoint compare-and-swap) so that the contract suite (tests/contract) can run against it, and it
can be told to fail at named points to exercise the engine's error and recovery paths:

* ``"commit"`` — the commit raises before anything is applied;
* ``"commit.tiles_only"`` — the tiles of the batch are stored, then the commit raises: the state a
  crash between tile write and head swap leaves on the SQLite/files backend;
* ``"sequencing"``, ``"read_tile"``, ``"entries"``, ``"head"``, ``"kv"``, ``"search"``.

A backend object outlives :class:`keyless.log.TransparencyLog` instances, so "restarting" a log on
the same backend exercises recovery on start.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from keyless.errors import Conflict, StorageError
from keyless.storage.model import Batch, LogHead, StoredEntry


@dataclass
class _Fault:
    remaining: int
    error: Callable[[], Exception]


class Faults:
    """Named failure points: ``faults.fail("commit", times=2)`` makes the next two commits fail."""

    def __init__(self) -> None:
        self._armed: dict[str, _Fault] = {}
        self._lock = threading.Lock()
        self.hits: dict[str, int] = {}

    def fail(
        self,
        point: str,
        *,
        times: int = 1,
        error: Callable[[], Exception] | None = None,
    ) -> None:
        """Arm ``point`` to raise (default: :class:`StorageError`) on its next ``times`` uses."""
        with self._lock:
            self._armed[point] = _Fault(
                times, error or (lambda: StorageError(f"injected fault at {point}"))
            )

    def clear(self) -> None:
        """Disarm every point."""
        with self._lock:
            self._armed.clear()

    def check(self, point: str) -> None:
        """Raise if ``point`` is armed (called by the backend at each named point)."""
        with self._lock:
            fault = self._armed.get(point)
            if fault is None:
                return
            fault.remaining -= 1
            if fault.remaining <= 0:
                del self._armed[point]
            self.hits[point] = self.hits.get(point, 0) + 1
            error = fault.error()
        raise error


@dataclass
class _Log:
    head: LogHead | None = None
    entries: list[StoredEntry] = field(default_factory=list)
    leaf_hashes: list[bytes] = field(default_factory=list)
    by_key: dict[bytes, int] = field(default_factory=dict)
    by_leaf_hash: dict[bytes, int] = field(default_factory=dict)
    tiles: dict[str, bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _MemorySession:
    def __init__(self, backend: MemoryBackend, log: _Log) -> None:
        self._backend = backend
        self._log = log

    def head(self) -> LogHead | None:
        self._backend.faults.check("head")
        return self._log.head

    def find(self, dedup_keys: Sequence[bytes]) -> dict[bytes, tuple[int, int]]:
        found: dict[bytes, tuple[int, int]] = {}
        for key in dedup_keys:
            index = self._log.by_key.get(key)
            if index is not None:
                found[key] = (index, self._log.entries[index].integrated_time)
        return found

    def read_tile(self, path: str) -> bytes | None:
        self._backend.faults.check("read_tile")
        return self._log.tiles.get(path)

    def entries(self, start: int, end: int) -> list[StoredEntry]:
        self._backend.faults.check("entries")
        return self._log.entries[start:end]

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        return self._log.leaf_hashes[start:end]

    def commit(self, batch: Batch) -> None:
        log = self._log
        self._backend.faults.check("commit")
        current = log.head.size if log.head else 0
        if current != batch.old_size or (log.head is None and batch.old_size != 0):
            raise Conflict(f"checkpoint moved: expected size {batch.old_size}, found {current}")
        if log.head is not None and batch.head.size == current and batch.head != log.head:
            raise Conflict(f"a different checkpoint of size {current} is already published")
        for offset, entry in enumerate(batch.entries):
            if entry.index != current + offset:
                raise StorageError(f"entry {entry.index} does not extend the log at {current}")
            if entry.dedup_key in log.by_key:
                raise Conflict(f"dedup key of entry {entry.index} is already in the log")
        if current + len(batch.entries) != batch.head.size:
            raise StorageError("the new head does not match the entries of the batch")
        log.tiles.update(batch.tiles)
        self._backend.faults.check("commit.tiles_only")
        for entry in batch.entries:
            log.entries.append(
                StoredEntry(
                    entry.index,
                    entry.leaf,
                    entry.bundle_entry if entry.bundle_entry is not None else entry.leaf,
                    entry.integrated_time,
                )
            )
            log.leaf_hashes.append(entry.leaf_hash)
            log.by_key[entry.dedup_key] = entry.index
            log.by_leaf_hash.setdefault(entry.leaf_hash, entry.index)
        log.head = batch.head
        for prefix in batch.obsolete:
            for path in [p for p in log.tiles if p.startswith(prefix + "/")]:
                del log.tiles[path]


class MemoryLogStore:
    """The log store of :class:`MemoryBackend`."""

    def __init__(self, backend: MemoryBackend) -> None:
        self._backend = backend
        self._logs: dict[str, _Log] = {}
        self._lock = threading.Lock()

    def _log(self, name: str) -> _Log:
        with self._lock:
            log = self._logs.get(name)
            if log is None:
                log = self._logs[name] = _Log()
            return log

    @contextmanager
    def sequencing(self, log: str) -> Iterator[_MemorySession]:
        self._backend.faults.check("sequencing")
        state = self._log(log)
        with state.lock:
            yield _MemorySession(self._backend, state)

    def head(self, log: str) -> LogHead | None:
        self._backend.faults.check("head")
        return self._log(log).head

    def read_tile(self, log: str, path: str) -> bytes | None:
        self._backend.faults.check("read_tile")
        return self._log(log).tiles.get(path)

    def entries(self, log: str, start: int, end: int) -> list[StoredEntry]:
        self._backend.faults.check("entries")
        return self._log(log).entries[max(start, 0) : max(end, 0)]

    def index_of(self, log: str, key: bytes) -> int | None:
        state = self._log(log)
        index = state.by_key.get(key)
        return index if index is not None else state.by_leaf_hash.get(key)

    def logs(self) -> list[str]:
        with self._lock:
            return sorted(name for name, log in self._logs.items() if log.head is not None)

    # test helpers ---------------------------------------------------------------------------
    def tiles(self, log: str) -> dict[str, bytes]:
        """The stored tiles of ``log`` (tests corrupt or delete them to exercise recovery)."""
        return self._log(log).tiles


class MemorySearchIndex:
    """The search index of :class:`MemoryBackend`."""

    def __init__(self, backend: MemoryBackend) -> None:
        self._backend = backend
        self._index: dict[tuple[str, str], list[int]] = {}
        self._lock = threading.Lock()

    def add(self, log_name: str, key: str, index: int) -> None:
        self.add_many(log_name, [(key, index)])

    def add_many(self, log_name: str, items: Sequence[tuple[str, int]]) -> None:
        self._backend.faults.check("search")
        with self._lock:
            for key, index in items:
                found = self._index.setdefault((log_name, key), [])
                position = bisect.bisect_left(found, index)
                if position == len(found) or found[position] != index:
                    found.insert(position, index)

    def lookup(self, log_name: str, key: str) -> list[int]:
        self._backend.faults.check("search")
        with self._lock:
            return list(self._index.get((log_name, key), []))


class MemoryEvents:
    """Event windows (:class:`keyless.storage.seam.EventWindows`) in this process's memory,
    thread-safe; expired events are pruned on every use of their key and, for keys nobody uses
    any more, on every ``sweep_every``-th reservation."""

    def __init__(self, sweep_every: int = 256) -> None:
        #: (namespace, key) -> event -> (time, expires_at)
        self._events: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
        self._lock = threading.Lock()
        self._sweep_every = sweep_every
        self._reserved = 0

    def _live(self, where: tuple[str, str], now: float) -> dict[str, tuple[float, float]]:
        events = self._events.get(where, {})
        for name in [n for n, (_at, expires) in events.items() if expires <= now]:
            del events[name]
        if not events:
            self._events.pop(where, None)
        return events

    def reserve(
        self,
        namespace: str,
        limits: Sequence[tuple[str, int]],
        event: str,
        now: float,
        window: float,
    ) -> tuple[str, float] | None:
        with self._lock:
            self._reserved += 1
            if self._reserved % self._sweep_every == 0:
                for where in list(self._events):
                    self._live(where, now)
            for key, limit in limits:
                times = [at for at, _ in self._live((namespace, key), now).values()
                         if at > now - window]
                if len(times) >= limit:
                    return key, min(times, default=now)
            for key, _limit in limits:
                self._events.setdefault((namespace, key), {})[event] = (now, now + window)
            return None

    def withdraw(
        self, namespace: str, event: str, keys: Sequence[str], clear: Sequence[str] = ()
    ) -> None:
        with self._lock:
            for key in keys:
                events = self._events.get((namespace, key))
                if events is not None:
                    events.pop(event, None)
                    if not events:
                        del self._events[(namespace, key)]
            for key in clear:
                self._events.pop((namespace, key), None)

    def __len__(self) -> int:
        """Events held (expired ones included until they are pruned)."""
        with self._lock:
            return sum(len(events) for events in self._events.values())


class MemoryKeyValueStore:
    """The expiring key-value store of :class:`MemoryBackend` (``clock`` is injectable)."""

    def __init__(self, backend: MemoryBackend, clock: Callable[[], float]) -> None:
        self._backend = backend
        self._clock = clock
        self._values: dict[tuple[str, str], tuple[bytes, float]] = {}
        self._lock = threading.Lock()
        self.events = MemoryEvents()

    def put_if_absent(
        self, namespace: str, key: str, value: bytes, expires_at: float
    ) -> bytes | None:
        self._backend.faults.check("kv")
        with self._lock:
            existing = self._values.get((namespace, key))
            if existing is not None and existing[1] > self._clock():
                return existing[0]
            self._values[(namespace, key)] = (bytes(value), expires_at)
            return None

    def get(self, namespace: str, key: str) -> bytes | None:
        self._backend.faults.check("kv")
        with self._lock:
            existing = self._values.get((namespace, key))
            if existing is None or existing[1] <= self._clock():
                return None
            return existing[0]

    def replace(
        self, namespace: str, key: str, expected: bytes, value: bytes, expires_at: float
    ) -> bool:
        self._backend.faults.check("kv")
        with self._lock:
            existing = self._values.get((namespace, key))
            if existing is None or existing[1] <= self._clock() or existing[0] != expected:
                return False
            self._values[(namespace, key)] = (bytes(value), expires_at)
            return True

    def delete(self, namespace: str, key: str) -> None:
        self._backend.faults.check("kv")
        with self._lock:
            self._values.pop((namespace, key), None)

    def reserve_event(
        self,
        namespace: str,
        limits: Sequence[tuple[str, int]],
        event: str,
        now: float,
        window: float,
    ) -> tuple[str, float] | None:
        self._backend.faults.check("kv")
        return self.events.reserve(namespace, limits, event, now, window)

    def withdraw_event(
        self, namespace: str, event: str, keys: Sequence[str], clear: Sequence[str] = ()
    ) -> None:
        self._backend.faults.check("kv")
        self.events.withdraw(namespace, event, keys, clear)


class MemoryBackend:
    """Everything in dictionaries; ``faults`` injects failures (see the module docstring)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.url = "memory://"
        self.faults = Faults()
        self.log_store = MemoryLogStore(self)
        self.search_index = MemorySearchIndex(self)
        self.kv = MemoryKeyValueStore(self, clock)

    def close(self) -> None:
        """Nothing to release (the data stays for a "restart" on the same object)."""
