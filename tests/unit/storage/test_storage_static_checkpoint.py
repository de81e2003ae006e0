"""The static ``<log>/checkpoint`` file of a SQLite data directory served by several processes
(``keyless serve --workers N``): it never goes back to an older tree."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from keyless.formats.note_keys import NoteSigner
from keyless.keys import InMemorySigner, generate_key
from keyless.log import TransparencyLog
from keyless.storage import Storage, open_storage
from keyless.storage.files import FileTileStore
from keyless.storage.sqlite import SQLiteLogStore

SIGNER = NoteSigner.ed25519("example.test/log", InMemorySigner(generate_key("ed25519")))


def _tiles(storage: Storage) -> FileTileStore:
    store = storage.log_store
    assert isinstance(store, SQLiteLogStore)
    return store.tiles


async def _worker(data_dir: Path) -> tuple[Storage, TransparencyLog]:
    storage = await open_storage(f"sqlite:///{data_dir / 'keyless.db'}", data_dir=data_dir)
    log = TransparencyLog(storage, name="rekor-v2", origin="example.test/log", signer=SIGNER,
                          seed=[b"seed"])
    await log.start()
    return storage, log


def test_a_late_writer_never_puts_back_an_older_checkpoint(tmp_path: Path) -> None:
    """Worker A commits, is descheduled before it writes the static checkpoint, worker B commits
    and writes its newer one, then A writes: the file keeps B's (the committed head)."""

    async def scenario() -> None:
        (storage_a, a), (storage_b, b) = await _worker(tmp_path), await _worker(tmp_path)
        tiles_a = _tiles(storage_a)
        publish = tiles_a.publish_checkpoint
        committed, go_on = threading.Event(), threading.Event()

        def late(log: str, checkpoint: bytes) -> None:  # runs on A's writer thread
            committed.set()
            assert go_on.wait(30)
            publish(log, checkpoint)

        tiles_a.publish_checkpoint = late  # type: ignore[method-assign]
        first = asyncio.create_task(a.add(b"through worker a"))
        assert await asyncio.to_thread(committed.wait, 30)
        second = await b.add(b"through worker b")
        go_on.set()
        assert (await first).tree_size == 2 and second.tree_size == 3
        static = tiles_a.read("rekor-v2", "checkpoint")
        assert static == (await b.head()).checkpoint, static
        for log, storage in ((a, storage_a), (b, storage_b)):
            await log.close()
            await storage.close()

    asyncio.run(scenario())


def test_a_starting_worker_does_not_reconcile_to_an_older_head(tmp_path: Path) -> None:
    """A worker starting (recovery reconciles the static file with the head it read) while
    another commits keeps the newest committed checkpoint in the file."""

    async def scenario() -> None:
        storage_a, a = await _worker(tmp_path)
        (tmp_path / "logs" / "rekor-v2" / "checkpoint").unlink()  # as after a kill -9
        storage_b = await open_storage(f"sqlite:///{tmp_path / 'keyless.db'}", data_dir=tmp_path)
        tiles_b = _tiles(storage_b)
        reconcile = tiles_b.reconcile_checkpoint
        read, go_on = threading.Event(), threading.Event()

        def late(log: str, committed: object) -> None:  # B has read the head, then waits
            read.set()
            assert go_on.wait(30)
            reconcile(log, committed)  # type: ignore[arg-type]

        tiles_b.reconcile_checkpoint = late  # type: ignore[method-assign]
        b = TransparencyLog(storage_b, name="rekor-v2", origin="example.test/log",
                            signer=SIGNER, seed=[b"seed"])
        starting = asyncio.create_task(b.start())
        assert await asyncio.to_thread(read.wait, 30)
        added = await a.add(b"through worker a")
        go_on.set()
        await starting
        assert tiles_b.read("rekor-v2", "checkpoint") == (await a.head()).checkpoint
        assert added.tree_size == 2
        for log, storage in ((a, storage_a), (b, storage_b)):
            await log.close()
            await storage.close()

    asyncio.run(scenario())
