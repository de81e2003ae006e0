"""The search indexer: gaps (entries appended but never submitted here) are filled from the log,
storage failures are retried without losing the batch, and the watermark is persisted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tlog_support import CA, EMAIL, CountingIssuers, Signer, hashedrekord_v2

from keyless.errors import StorageError
from keyless.formats.note_keys import NoteSigner
from keyless.keys import InMemorySigner, generate_key
from keyless.log import TransparencyLog
from keyless.services.tlog.identities import TrustedIssuers
from keyless.services.tlog.indexer import SearchIndexer
from keyless.services.tlog.kinds import propose_v2
from keyless.storage import open_storage
from keyless.storage.memory import MemoryBackend

KEY = f"email:{EMAIL}"


async def _log(backend: MemoryBackend) -> tuple[TransparencyLog, object]:
    storage = await open_storage("memory://", backend=backend)
    log = TransparencyLog(storage, name="rekor-v2", origin="localhost/rekor",
                          signer=NoteSigner.ed25519("localhost/rekor",
                                                    InMemorySigner(generate_key("ed25519"))),
                          seed=[b"seed"])
    await log.start()
    return log, storage


async def test_gaps_are_filled_from_the_log_and_watermark_persists() -> None:
    backend = MemoryBackend()
    log, storage = await _log(backend)
    ca = CA.create()
    signer = Signer.create(ca)
    indexer = SearchIndexer(log, storage.search_index, "rekor-v2",  # type: ignore[attr-defined]
                            kv=storage.kv, gap_grace=0.5,  # type: ignore[attr-defined]
                            trusted=TrustedIssuers([ca.cert]))
    await indexer.start()
    await indexer.caught_up()  # else a late start-up catch-up would index entries 1 and 2 itself
    proposed = [propose_v2(hashedrekord_v2(signer, b"%d" % i)) for i in range(4)]
    results = [await log.add(p.body) for p in proposed]
    # Entries 1 and 2 were appended by "another process": only 3 and 4 are submitted here.
    for result, p in zip(results[2:], proposed[2:], strict=True):
        indexer.submit(result.index, p.body)
    await indexer.flush()
    assert await indexer.lookup([KEY]) == [3, 4]
    for _ in range(500):  # the background task fills the gap after gap_grace
        if await indexer.lookup([KEY]) == [1, 2, 3, 4]:
            break
        await asyncio.sleep(0.02)
    assert await indexer.lookup([KEY]) == [1, 2, 3, 4]
    await indexer.close()
    assert await storage.kv.get("tlog-search-watermark", "rekor-v2") == b"5"  # type: ignore[attr-defined]
    await log.close()
    await storage.close()  # type: ignore[attr-defined]


async def test_storage_failure_keeps_the_batch() -> None:
    backend = MemoryBackend()
    log, storage = await _log(backend)
    ca = CA.create()
    signer = Signer.create(ca)
    indexer = SearchIndexer(log, storage.search_index, "rekor-v2",  # type: ignore[attr-defined]
                            trusted=TrustedIssuers([ca.cert]))
    p = propose_v2(hashedrekord_v2(signer, b"x"))
    result = await log.add(p.body)
    backend.faults.fail("search", times=1)
    indexer.submit(result.index, p.body)
    with pytest.raises(StorageError):
        await indexer.flush()
    assert backend.faults.hits["search"] == 1
    await indexer.flush()  # the batch was kept: the retry writes it
    assert await indexer.lookup([KEY]) == [1]
    await log.close()
    await storage.close()  # type: ignore[attr-defined]


class _CountingKV:
    """A ``storage.kv`` that records the values written."""

    def __init__(self, kv: Any) -> None:
        self._kv = kv
        self.written: list[bytes] = []

    async def put_if_absent(self, namespace: str, key: str, value: bytes,
                            expires_at: float) -> bytes | None:
        self.written.append(value)
        result: bytes | None = await self._kv.put_if_absent(namespace, key, value, expires_at)
        return result

    async def get(self, namespace: str, key: str) -> bytes | None:
        result: bytes | None = await self._kv.get(namespace, key)
        return result

    async def delete(self, namespace: str, key: str) -> None:
        await self._kv.delete(namespace, key)


async def test_the_watermark_is_written_at_most_once_per_interval_and_on_close() -> None:
    """Each write is two storage transactions; a flush every 50 ms need not pay them."""
    storage = await open_storage("memory://")
    kv = _CountingKV(storage.kv)  # type: ignore[attr-defined]
    indexer = SearchIndexer(None, storage.search_index, "rekor-v2",  # type: ignore[arg-type, attr-defined]
                            kv=kv, persist_interval=3600)
    for index in range(5):
        indexer.submit(index, b"{}")
        await indexer.flush()
    assert kv.written == [b"1"]
    await indexer.close()
    assert kv.written == [b"1", b"5"]
    assert await storage.kv.get("tlog-search-watermark", "rekor-v2") == b"5"  # type: ignore[attr-defined]
    await storage.close()  # type: ignore[attr-defined]


async def test_a_gap_another_process_indexed_is_counted_not_indexed_again() -> None:
    """Two workers share one log and one index, each indexing what it appended: the gaps each
    sees are the other's entries, already indexed there; their certificates are not path-validated
    a second time, and each watermark still passes them."""
    backend = MemoryBackend()
    log, storage = await _log(backend)
    ca = CA.create()
    signer = Signer.create(ca)
    own, other = CountingIssuers([ca.cert]), CountingIssuers([ca.cert])
    indexers = [SearchIndexer(log, storage.search_index, "rekor-v2",  # type: ignore[attr-defined]
                              gap_grace=3600, trusted=trusted) for trusted in (own, other)]
    for indexer in indexers:
        await indexer.start()
        await indexer.caught_up()
    proposed = [propose_v2(hashedrekord_v2(signer, b"%d" % i)) for i in range(4)]
    results = [await log.add(p.body) for p in proposed]
    for number, (result, p) in enumerate(zip(results, proposed, strict=True)):
        indexers[number % 2].submit(result.index, p.body, p.parsed)
    for indexer in indexers:
        await indexer.flush()
    assert len(own.checked) == 2
    assert await indexers[0].fill_gaps() == 1  # entry 2, below its own entry 3
    assert len(own.checked) == 2
    assert await indexers[0].lookup([KEY]) == [1, 2, 3, 4]
    assert indexers[0]._watermark == 4  # entry 4 is the other's, above its last own entry
    for indexer in indexers:
        await indexer.close()
    await log.close()
    await storage.close()  # type: ignore[attr-defined]


class _Busy:
    """A search index under sustained load: each write of a batch brings the next entry."""

    def __init__(self, store: Any, arrivals: list[tuple[int, bytes]]) -> None:
        self._store = store
        self.indexer: SearchIndexer | None = None
        self.arrivals = arrivals
        self.gap = 1  # the entry another process appended
        self.gap_written = asyncio.Event()

    async def add_many(self, log_name: str, items: list[tuple[str, int]]) -> None:
        await self._store.add_many(log_name, items)
        if any(index == self.gap for _, index in items):
            self.gap_written.set()
        if self.arrivals and self.indexer is not None:
            self.indexer.submit(*self.arrivals.pop(0))

    async def lookup(self, log_name: str, key: str) -> list[int]:
        result: list[int] = await self._store.lookup(log_name, key)
        return result


async def test_gaps_are_filled_while_new_entries_keep_arriving() -> None:
    """The background task writes one round of queued entries at a time: a queue that never
    empties under load must not keep it from filling gaps (before, the set of entries indexed
    above a gap grew without bound under sustained load)."""
    backend = MemoryBackend()
    log, storage = await _log(backend)
    signer = Signer.create(CA.create())
    busy = _Busy(storage.search_index, [])  # type: ignore[attr-defined]
    indexer = SearchIndexer(log, busy, "rekor-v2", gap_grace=0)  # type: ignore[arg-type]
    busy.indexer = indexer
    await indexer.start()
    await indexer.caught_up()
    proposed = [propose_v2(hashedrekord_v2(signer, b"%d" % i)) for i in range(40)]
    results = [await log.add(p.body) for p in proposed]
    # entry 1 was appended by another process and is never submitted here
    arrivals = [(r.index, p.body) for r, p in zip(results[1:], proposed[1:], strict=True)]
    busy.arrivals = arrivals[1:]
    indexer.submit(*arrivals[0])
    await asyncio.wait_for(busy.gap_written.wait(), 30)
    assert busy.arrivals, "the gap was filled only once the load stopped"
    await indexer.close()
    await log.close()
    await storage.close()  # type: ignore[attr-defined]


async def test_filling_gaps_never_passes_an_own_entry_still_queued() -> None:
    """The watermark says what a restart need not re-index: an entry submitted here but not yet
    written (e.g. its batch is being retried) is no gap to fill, and the watermark waits for it."""
    backend = MemoryBackend()
    log, storage = await _log(backend)
    ca = CA.create()
    signer = Signer.create(ca)
    indexer = SearchIndexer(log, storage.search_index, "rekor-v2",  # type: ignore[attr-defined]
                            gap_grace=0, trusted=TrustedIssuers([ca.cert]))
    proposed = [propose_v2(hashedrekord_v2(signer, b"%d" % i)) for i in range(3)]
    results = [await log.add(p.body) for p in proposed]
    indexer.submit(results[2].index, proposed[2].body)
    await indexer.flush()
    indexer.submit(results[1].index, proposed[1].body)  # queued, not written yet
    await indexer.fill_gaps()
    assert indexer._watermark == results[1].index
    await indexer.flush()
    assert indexer._watermark == results[2].index + 1
    assert await indexer.lookup([KEY]) == [1, 2, 3]
    await log.close()
    await storage.close()  # type: ignore[attr-defined]
