"""The real log engine and key-value store over the in-memory storage backend, for tests.

Constructible without an event loop at hand (the CA and CT log unit tests build them in plain
functions); the first call starts the engine on that call's loop, so the behaviour (batching,
dedup, tiles, proofs, ``add_at_index``) is exactly the production engine's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from keyless.formats.note_keys import NoteSigner
from keyless.keys import InMemorySigner, generate_key
from keyless.log import AddResult, LogHead, StoredEntry, TransparencyLog
from keyless.log.seam import EntryAtIndex
from keyless.storage import AsyncKeyValueStore, Storage
from keyless.storage.memory import MemoryBackend


class MemoryLogEngine(TransparencyLog):
    """The real log engine over the in-memory storage backend, started on first use.

    For code that builds a CT log without an event loop at hand (the CA's unit tests, quick
    experiments): the first call starts the engine, on that call's event loop, so the
    behaviour — batching, dedup, tiles, proofs, ``add_at_index`` — is exactly the engine's.
    ``seed`` dummy leaves are sequenced first so that no real entry gets index 0 (interop.md §5
    item 1); a static-ct-api reader then sees those leaves in the first data tile, so the
    production CT log (server wiring) uses no seed. :meth:`close` stops the engine and its
    threads. Code that can ``await`` should build ``TransparencyLog`` itself and start it.
    """

    def __init__(
        self, seed: int = 0, *, clock: Callable[[], float] = time.time,
        origin: str = "memory.invalid/ctlog",
    ) -> None:  # fmt: skip
        signer = NoteSigner.ed25519(origin, InMemorySigner(generate_key("ed25519")))
        super().__init__(
            Storage(MemoryBackend(clock=clock)), name="ctlog", origin=origin, signer=signer,
            clock=clock, seed=[b"keyless-seed-%d" % i for i in range(seed)],
        )  # fmt: skip
        self._start_lock = asyncio.Lock()
        self._running = False

    async def _ready(self) -> None:
        async with self._start_lock:
            if not self._running:
                await self.start()
                self._running = True

    async def close(self) -> None:
        """Finish what is queued, stop the engine, release the storage threads."""
        if self._running:
            await super().close()
            self._running = False
        await self._storage.close()

    async def add(
        self, leaf: bytes, *, bundle_entry: bytes | None = None, dedup_key: bytes | None = None,
        proof: bool = True,
    ) -> AddResult:  # fmt: skip
        await self._ready()
        return await super().add(leaf, bundle_entry=bundle_entry, dedup_key=dedup_key, proof=proof)

    async def add_at_index(
        self, entry_at: EntryAtIndex, *, dedup_key: bytes, proof: bool = True
    ) -> AddResult:
        await self._ready()
        return await super().add_at_index(entry_at, dedup_key=dedup_key, proof=proof)

    async def head(self) -> LogHead:
        await self._ready()
        return await super().head()

    async def tile(self, level: int, index: int, width: int | None = None) -> bytes:
        await self._ready()
        return await super().tile(level, index, width)

    async def entry_bundle(self, index: int, width: int | None = None) -> bytes:
        await self._ready()
        return await super().entry_bundle(index, width)

    async def entry(self, index: int) -> StoredEntry:
        await self._ready()
        return await super().entry(index)

    async def entries(self, start: int, end: int) -> list[StoredEntry]:
        await self._ready()
        return await super().entries(start, end)

    async def index_of(self, key: bytes) -> int | None:
        await self._ready()
        return await super().index_of(key)


class MemoryKeyValue(AsyncKeyValueStore):
    """``storage.kv`` of an in-memory storage backend (expiry by ``clock``), for the same uses."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__(Storage(MemoryBackend(clock=clock)))
