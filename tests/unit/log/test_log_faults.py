"""Failure and recovery paths of the log engine, driven by the memory backend's fault injection."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from keyless import merkle
from keyless.errors import NotFound, StorageError
from keyless.formats.note_keys import NoteSigner
from keyless.formats.tiles import entries_path, tile_path
from keyless.keys import InMemorySigner, generate_key
from keyless.log import TransparencyLog
from keyless.storage import Storage, open_storage
from keyless.storage.memory import MemoryBackend

SIGNER = NoteSigner.ed25519("example.test/log", InMemorySigner(generate_key("ed25519")))


async def started(backend: MemoryBackend, **kw: int) -> tuple[Storage, TransparencyLog]:
    storage = await open_storage("memory://", backend=backend)
    log = TransparencyLog(
        storage, name="log", origin="example.test/log", signer=SIGNER, seed=[b"seed"], **kw
    )
    await log.start()
    return storage, log


async def verify_everything(log: TransparencyLog) -> None:
    """Re-derive the tree from the stored entries and compare with tiles, root and proofs."""
    size, root = await log.tree()
    leaves = [merkle.leaf_hash(e.leaf) for e in await log.entries(0, size)]
    assert len(leaves) == size
    assert merkle.root_from_leaf_hashes(leaves) == root
    for tile in range((size + 255) // 256):
        width = min(256, size - 256 * tile)
        assert await log.tile(0, tile, width) == b"".join(leaves[256 * tile : 256 * tile + width])
    for index in range(0, size, 37):
        proof = await log.inclusion_proof(index, size)
        merkle.verify_inclusion(leaves[index], index, size, proof, root)


async def test_a_failed_commit_fails_its_waiters_and_the_log_goes_on() -> None:
    backend = MemoryBackend()
    _storage, log = await started(backend)
    await log.add(b"a")
    backend.faults.fail("commit")
    with pytest.raises(StorageError):
        await log.add(b"b")
    after = await log.add(b"b")  # retried: not a duplicate, since nothing was committed
    assert not after.duplicate and after.index == 2
    await verify_everything(log)
    await log.close()


async def test_tiles_left_by_a_crashed_batch_are_never_served_and_get_overwritten() -> None:
    backend = MemoryBackend()
    _storage, log = await started(backend)
    await asyncio.gather(*(log.add(b"x%d" % i) for i in range(249)))  # size 250
    backend.faults.fail("commit.tiles_only")
    with pytest.raises(StorageError):
        await asyncio.gather(*(log.add(b"lost %d" % i) for i in range(10)))
    tiles = backend.log_store.tiles("log")
    assert tile_path(0, 0) in tiles  # the leftover full tile of the failed batch…
    with pytest.raises(NotFound):
        await log.tile(0, 0)  # …is beyond the committed head, so it is not served
    await asyncio.gather(*(log.add(b"y%d" % i) for i in range(10)))
    await verify_everything(log)
    await log.close()


async def test_restart_rebuilds_lost_partial_tiles() -> None:
    backend = MemoryBackend()
    _storage, log = await started(backend)
    await asyncio.gather(*(log.add(b"e%d" % i) for i in range(300)))
    size, root = await log.tree()
    await log.close()
    tiles = backend.log_store.tiles("log")
    del tiles[tile_path(0, 1, size - 256)]
    del tiles[entries_path(1, size - 256)]
    _storage2, log2 = await started(backend)
    assert await log2.tree() == (size, root)
    assert tile_path(0, 1, size - 256) in tiles  # written back by recovery
    assert entries_path(1, size - 256) in tiles
    await log2.add(b"after")
    await verify_everything(log2)
    await log2.close()


async def test_restart_refuses_tiles_that_contradict_the_checkpoint() -> None:
    backend = MemoryBackend()
    _storage, log = await started(backend)
    await asyncio.gather(*(log.add(b"e%d" % i) for i in range(20)))
    size, _root = await log.tree()
    await log.close()
    tiles = backend.log_store.tiles("log")
    tiles[tile_path(0, 0, size)] = b"\x01" * 32 * size
    storage = await open_storage("memory://", backend=backend)
    log2 = TransparencyLog(storage, name="log", origin="example.test/log", signer=SIGNER)
    with pytest.raises(StorageError, match="root hash"):
        await log2.start()


async def test_storage_errors_on_read_surface_as_storage_errors() -> None:
    backend = MemoryBackend()
    _storage, log = await started(backend)
    await log.add(b"a")
    backend.faults.fail("entries")
    with pytest.raises(StorageError):
        await log.entry(1)
    assert (await log.entry(1)).leaf == b"a"
    await log.close()


async def test_batches_respect_max_batch() -> None:
    backend = MemoryBackend()
    _storage, log = await started(backend, max_batch=16)
    results = await asyncio.gather(*(log.add(b"m%d" % i) for i in range(100)))
    sizes = {r.tree_size for r in results}
    assert len(sizes) >= 100 // 16  # at least ceil(100/16) - 1 checkpoints
    for r in results:
        assert r.tree_size - r.index <= 16
    await verify_everything(log)
    await log.close()


class GatedStore:
    """A log store whose sequencing sessions first wait at a gate: a stand-in for another
    process (``--workers N``) holding the log's write lock."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.waiting = threading.Event()  # a session is waiting at the gate
        self.gate = threading.Event()
        self.gate.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @contextmanager
    def sequencing(self, log: str) -> Iterator[Any]:
        self.waiting.set()
        self.gate.wait()
        with self._store.sequencing(log) as session:
            yield session


async def test_entries_queued_while_the_write_lock_is_held_join_the_waiting_batch() -> None:
    backend = MemoryBackend()
    gated = GatedStore(backend.log_store)
    backend.log_store = gated  # type: ignore[assignment]
    _storage, log = await started(backend)
    gated.waiting.clear()
    gated.gate.clear()
    first = asyncio.ensure_future(log.add(b"first"))
    await asyncio.to_thread(gated.waiting.wait)  # its batch waits for the write lock
    later = [asyncio.ensure_future(log.add(b"later%d" % i)) for i in range(3)]
    await asyncio.sleep(0)
    assert log.pending == 4  # nothing is taken before the lock is held
    gated.gate.set()
    results = await asyncio.gather(first, *later)
    assert {r.tree_size for r in results} == {5}  # one batch: seed + 4
    await verify_everything(log)
    await log.close()


async def test_a_batch_that_cannot_start_fails_the_queued_waiters() -> None:
    backend = MemoryBackend()
    _storage, log = await started(backend)
    backend.faults.fail("sequencing")
    with pytest.raises(StorageError):
        await log.add(b"a")
    assert log.pending == 0
    assert (await log.add(b"a")).index == 1
    await log.close()


async def test_closed_log_refuses_and_pending_counts_the_queue() -> None:
    from keyless.errors import Unavailable

    backend = MemoryBackend()
    _storage, log = await started(backend)
    task = asyncio.ensure_future(log.add(b"queued"))
    await asyncio.sleep(0)
    assert log.pending == 1
    await log.close()  # drains the queue first
    assert (await task).index == 1 and log.pending == 0
    with pytest.raises(Unavailable):
        await log.add(b"too late")


async def test_a_process_follows_the_batches_of_another_without_reloading_its_edge() -> None:
    """Two processes sequencing one log (``--workers 2``) take turns: each moves its right edge
    over the other's entries (read from the entry table, checked against the root) instead of
    reloading the partial tiles and entry bundle, and every tile and proof stays right."""
    backend = MemoryBackend()
    _s1, one = await started(backend)
    _s2, two = await started(backend)
    reloads = []
    for log in (one, two):
        load = log._sequencer._load

        def counted(session: Any, head: Any, load: Any = load) -> Any:
            reloads.append(head.size)
            return load(session, head)

        log._sequencer._load = counted  # type: ignore[method-assign]
    for turn in range(40):  # crosses a full tile and entry bundle (256 entries)
        log = one if turn % 2 else two
        results = await asyncio.gather(*(log.add(b"t%d-%d" % (turn, i)) for i in range(9)))
        for r in results:
            merkle.verify_inclusion(
                r.leaf_hash, r.index, r.tree_size, r.inclusion_proof, r.root_hash
            )
    assert reloads == []
    assert (await one.tree()) == (await two.tree())
    await verify_everything(one)
    await verify_everything(two)
    await one.close()
    await two.close()


async def test_a_process_reloads_its_edge_when_another_added_too_much_to_follow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from keyless.log import sequencer

    monkeypatch.setattr(sequencer, "_CATCH_UP_MAX", 5)
    backend = MemoryBackend()
    _s1, one = await started(backend)
    _s2, two = await started(backend)
    await asyncio.gather(*(two.add(b"b%d" % i) for i in range(9)))
    assert (await one.add(b"a")).index == 10  # reloaded: 9 entries are more than it follows
    await verify_everything(one)
    await one.close()
    await two.close()
