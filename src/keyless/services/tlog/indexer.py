"""Keeps the search index of one log up to date, off the write path, rebuildable from the log.

The index is derived data: every key comes from an entry's canonical body
(:func:`keyless.services.tlog.search.keys_for_body`). Writers hand new entries to
:meth:`SearchIndexer.submit`, with what they already parsed of the body when they have it
(:class:`~keyless.services.tlog.search.ParsedEntry`: the same keys, without parsing again); a
background task writes their keys in batches so that indexing never adds latency to
``POST …/entries``. A watermark (the next log index not yet known to be indexed) is kept in
``storage.kv``, written at most once per ``persist_interval`` and on close (a stale one only costs
re-indexing the entries above it, which adds no key twice); on start the indexer re-reads the log
from the watermark, so entries acknowledged just before a crash are indexed after restart, and
:meth:`rebuild` re-derives the whole index from the log's own entries. With several processes on
one log (``--workers N``, or several ``serve`` on PostgreSQL) each indexes what it appended; the
others' entries are gaps to it, which :meth:`SearchIndexer.fill_gaps` passes once they are
``gap_grace`` old, indexing only those nobody indexed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Iterable, Sequence

from keyless.errors import Error
from keyless.log.seam import LogEngine
from keyless.services.tlog.identities import TrustedIssuers
from keyless.services.tlog.search import ParsedEntry, keys_for_body, keys_for_parsed
from keyless.storage.seam import NEVER, KeyValue, SearchIndexStore

logger = logging.getLogger(__name__)

_WATERMARK_NS = "tlog-search-watermark"
_REBUILD_CHUNK = 256
#: Most gap entries one :meth:`SearchIndexer.fill_gaps` looks at (it holds the indexer's lock).
_FILL_MAX = 4096


def _first_keys(bodies: Sequence[tuple[int, bytes]]) -> list[str | None]:
    """The first search key of each body (its artifact digest; naming it needs no certificate
    check), or None for a body without keys. An entry's keys are written in one transaction, so
    finding its first key at its index means it is indexed."""
    return [next(iter(keys_for_body(body)), None) for _, body in bodies]


class SearchIndexer:
    """Background writer and reader of one log's search index."""

    def __init__(
        self,
        log: LogEngine,
        store: SearchIndexStore,
        log_name: str,
        *,
        kv: KeyValue | None = None,
        trusted: TrustedIssuers | None = None,
        flush_interval: float = 0.05,
        gap_grace: float = 1.0,
        persist_interval: float = 1.0,
    ) -> None:
        """``trusted``: the CAs whose certificates' identities are indexed (none when ``None``;
        see :mod:`keyless.services.tlog.identities`). ``persist_interval``: seconds between two
        writes of the watermark (each is two storage transactions; every flush would write it
        twenty times a second under load)."""
        self._log = log
        self._trusted = trusted
        self._store = store
        self._name = log_name
        self._kv = kv
        self._interval = flush_interval
        self._pending: dict[int, tuple[bytes, ParsedEntry | None]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._watermark = 0
        self._persisted = 0  # the watermark last written to storage
        self._persisted_at = -math.inf
        self._persist_interval = persist_interval
        self._done: set[int] = set()  # indexed entries above a gap in the watermark
        # (when, newest index) of each round written here; what is older than gap_grace
        # bounds the gaps fill_gaps looks at (``_settled``: one past the newest such index)
        self._rounds: collections.deque[tuple[float, int]] = collections.deque()
        self._settled = 0
        self._gap_since: float | None = None
        self._caught_up = asyncio.Event()
        self._stopping = False
        self._gap_grace = gap_grace

    async def start(self) -> None:
        """Start indexing in the background: first catch up from the persisted watermark.

        Catching up on a large log takes a while, so it does not hold up the service's start
        (searches see older entries once :meth:`caught_up` returns); new entries are queued
        meanwhile.
        """
        self._watermark = self._persisted = await self._load_watermark()
        self._task = asyncio.create_task(self._run(), name=f"search-index-{self._name}")

    async def caught_up(self) -> None:
        """Wait until the start-up catch-up has indexed every entry that existed at start."""
        await self._caught_up.wait()

    async def close(self) -> None:
        """Write what is pending and stop (an unfinished catch-up resumes at the next start).

        The background task is asked to stop and awaited, not cancelled, so that no storage
        write is cut in half.
        """
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()
        async with self._lock:
            await self._persist(force=True)

    def submit(self, index: int, body: bytes, parsed: ParsedEntry | None = None) -> None:
        """Queue a newly logged entry for indexing (cheap; never blocks the writer).

        ``parsed``: what the writer parsed of this very ``body`` (its keys are the body's; the
        certificate is still path-validated here, afresh)."""
        self._pending[index] = (body, parsed)
        self._wake.set()

    def _derive(
        self, entries: Sequence[tuple[int, tuple[bytes, ParsedEntry | None]]]
    ) -> list[tuple[str, int]]:
        """``(key, index)`` pairs of ``entries``: certificate parsing and path validation, so
        it runs in a worker thread, not on the event loop."""
        trusted = self._trusted
        return [
            (key, index)
            for index, (body, parsed) in entries
            for key in (keys_for_body(body, trusted) if parsed is None
                        else keys_for_parsed(parsed, trusted))
        ]

    async def flush(self) -> None:
        """Write every queued entry's keys now (tests and shutdown).

        On a storage error the batch goes back in the queue (and the error propagates).
        """
        await self._flush_round()  # also waits for a round the background task is writing
        while self._pending:
            await self._flush_round()

    async def _flush_round(self) -> None:
        """Write the keys of what is queued now (what arrives meanwhile waits for the next
        round: under sustained load the background task must still get to filling gaps)."""
        async with self._lock:
            batch = sorted(self._pending.items())
            self._pending = {}
            if not batch:
                return
            try:
                await self._store.add_many(
                    self._name, await asyncio.to_thread(self._derive, batch)
                )
            except BaseException:
                for index, item in batch:
                    self._pending.setdefault(index, item)
                raise
            self._done.update(index for index, _ in batch)
            self._rounds.append((time.monotonic(), batch[-1][0] + 1))
            await self._absorb()

    async def fill_gaps(self) -> int:
        """Account for the entries below the watermark's reach that nobody submitted here.

        That happens when another process (another worker, or another ``serve`` on a shared
        PostgreSQL log) appended them, or a request died between ``add`` and ``submit``. Without
        this the watermark would stop at the first gap and the set of entries indexed above it
        would grow forever. Every gap below the newest entry this process indexed ``gap_grace``
        ago (at least the first gap) is looked at, up to ``_FILL_MAX`` entries per call: an
        entry the other process has indexed by now (:func:`_first_keys`) is only counted, any
        other is indexed here. Returns the count of gap entries looked at.
        """
        if not self._done:
            return 0
        cutoff = time.monotonic() - self._gap_grace
        while self._rounds and self._rounds[0][0] <= cutoff:
            self._settled = max(self._settled, self._rounds.popleft()[1])
        looked = 0
        async with self._lock:
            start = self._watermark
            end = min(max(self._settled, min(self._done, default=start)), start + _FILL_MAX)
            for chunk in range(start, end, _REBUILD_CHUNK):
                if self._stopping:
                    end = chunk
                    break
                entries = await self._log.entries(chunk, min(end, chunk + _REBUILD_CHUNK))
                bodies = [(e.index, e.bundle_entry or e.leaf) for e in entries
                          if e.index not in self._done and e.index not in self._pending]
                looked += len(bodies)
                firsts = await asyncio.to_thread(_first_keys, bodies)
                missing = [
                    (index, (body, None))
                    for (index, body), first in zip(bodies, firsts, strict=True)
                    if first is not None
                    and index not in await self._store.lookup(self._name, first)
                ]
                if missing:
                    await self._store.add_many(
                        self._name, await asyncio.to_thread(self._derive, missing)
                    )
                if len(entries) < min(end, chunk + _REBUILD_CHUNK) - chunk:
                    end = chunk + len(entries)  # the log is shorter than thought
                    break
            # own entries still queued are not indexed yet: the watermark waits for their round
            self._done.update(i for i in range(start, end) if i not in self._pending)
            await self._absorb()
        return looked

    async def _absorb(self) -> None:
        """Advance the watermark through the contiguous indexed entries above it."""
        upto = self._watermark
        while upto in self._done:
            self._done.discard(upto)
            upto += 1
        self._done = {i for i in self._done if i >= upto}
        await self._advance(upto)
        if not self._done:
            self._gap_since = None
            self._rounds.clear()  # no gap: every round so far is below the watermark
        elif self._gap_since is None:
            self._gap_since = time.monotonic()

    async def rebuild(self, start: int = 0, end: int | None = None) -> int:
        """Re-derive the keys of entries ``[start, end)`` from the log itself; returns the count."""
        if end is None:
            end, _ = await self._log.tree()
        count = 0
        async with self._lock:
            for chunk in range(start, end, _REBUILD_CHUNK):
                if self._stopping:
                    break
                entries = await self._log.entries(chunk, min(end, chunk + _REBUILD_CHUNK))
                pairs = [(e.index, (e.bundle_entry or e.leaf, None)) for e in entries]
                await self._store.add_many(
                    self._name, await asyncio.to_thread(self._derive, pairs)
                )
                count += len(entries)
            if start <= self._watermark:
                await self._advance(start + count)
            await self._absorb()
        return count

    async def lookup(self, keys: Iterable[str], *, operator: str = "and") -> list[int]:
        """Log indexes of entries having all (``and``) or any (``or``) of ``keys``, ascending."""
        result: set[int] | None = None
        for key in keys:
            found = set(await self._store.lookup(self._name, key))
            if result is None:
                result = found
            elif operator == "or":
                result |= found
            else:
                result &= found
        return sorted(result or ())

    async def _catch_up(self) -> None:
        while not self._stopping:
            try:
                size, _ = await self._log.tree()
                if self._watermark < size:
                    await self.rebuild(self._watermark, size)
                break
            except (Error, OSError) as exc:
                logger.warning("search index of %s: catch-up failed: %s", self._name, exc)
                await asyncio.sleep(self._gap_grace)
        self._caught_up.set()

    async def _run(self) -> None:
        await self._catch_up()
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._gap_grace)
            self._wake.clear()
            try:
                await self._flush_round()
                if (self._gap_since is not None
                        and time.monotonic() - self._gap_since >= self._gap_grace):
                    await self.fill_gaps()
                async with self._lock:  # what the last flushes advanced, once idle
                    await self._persist(force=False)
            except (Error, OSError) as exc:  # storage hiccup: the batch is retried next round
                logger.warning("search index of %s: %s", self._name, exc)
            await asyncio.sleep(self._interval)

    async def _load_watermark(self) -> int:
        if self._kv is None:
            return 0
        raw = await self._kv.get(_WATERMARK_NS, self._name)
        try:
            return int(raw) if raw else 0
        except ValueError:
            return 0

    async def _advance(self, upto: int) -> None:
        """Record that every entry below ``upto`` is indexed (monotonic, never across a gap);
        persisted now unless it was less than ``persist_interval`` ago."""
        self._watermark = max(self._watermark, upto)
        await self._persist(force=False)

    async def _persist(self, *, force: bool) -> None:
        upto = self._watermark
        if self._kv is None or upto == self._persisted:
            return
        now = time.monotonic()
        if not force and now - self._persisted_at < self._persist_interval:
            return
        self._persisted, self._persisted_at = upto, now
        # kv has no overwrite: delete + insert, shielded so that a cancelled caller cannot
        # leave the watermark deleted (a lost watermark only costs a full catch-up).
        await asyncio.shield(self._store_watermark(self._kv, upto))

    async def _store_watermark(self, kv: KeyValue, upto: int) -> None:
        await kv.delete(_WATERMARK_NS, self._name)
        await kv.put_if_absent(_WATERMARK_NS, self._name, str(upto).encode(), NEVER)
