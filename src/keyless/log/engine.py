"""``TransparencyLog``: the one log engine behind the CT log, Rekor v1 and Rekor v2.

Writes (Tessera / Sunlight design, architecture.md "Layers"): :meth:`TransparencyLog.add` hashes the
entry, queues it and waits. A single integrator task takes everything queued once it holds the
log's write lock — up to ``max_batch`` entries, after waiting at most ``batch_age`` seconds for
company — and runs one :class:`keyless.log.sequencer.Sequencer` step on the log's writer thread:
dedup, sequence, integrate, tiles, signed checkpoint, one atomic commit. So ``add`` returns only
once its entry is durably sequenced *and* covered by a durable signed checkpoint, with an inclusion
proof (unless the caller passes ``proof=False``: the CT log's SCTs need none). When idle a
lone write is a batch of one (no artificial delay); under load batches grow by themselves while the
previous commit is in flight. The queue is bounded: beyond ``max_pending`` waiting entries ``add``
raises :class:`keyless.errors.Pushback` (HTTP 429/503 with Retry-After).

Seeding (interop.md §5 gotcha 1): sigstore-js drops zero values from bundles, so log index 0 and a
proof over a 1-leaf tree break sigstore-python. A personality therefore passes ``seed=[…]``:
when the log is created, those entries are sequenced first (once, under the sequencing lock), so
no real entry
ever gets index 0 and the smallest tree a real entry is proven in has two leaves.

Witnessing (:mod:`keyless.log.witnessing`): with a ``publisher`` the committed checkpoint is
not handed out as it is; the publisher first gets the witnesses' cosignatures, and only what it
returns is published — in the ``AddResult`` of the batch and by :meth:`TransparencyLog.checkpoint`.
When it refuses (no quorum) the batch's writers get :class:`keyless.errors.Unavailable` and the
last published checkpoint stays served; the next batch, a resubmission or, while the log is
idle, a retry every ``republish_after`` seconds publishes the head once the witnesses agree.

Reads are served from tiles and the entry table: checkpoint, tiles (partial ``.p/W`` served by
truncating a wider tile, tlog-tiles), entry bundles, entries, inclusion and consistency proofs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from keyless.errors import (
    InvalidInput,
    NotFound,
    Pushback,
    StorageError,
    TooLarge,
    Unavailable,
)
from keyless.formats.note_keys import NoteSigner
from keyless.formats.tiles import (
    HASH_SIZE,
    MAX_ENTRY_SIZE,
    MAX_LEVEL,
    TILE_WIDTH,
    decode_entry_bundle,
    encode_entry_bundle,
    entries_path,
    tile_path,
    tile_width,
)
from keyless.log.nodes import NodeReader
from keyless.log.proofs import batch_inclusion_proofs
from keyless.log.seam import EntryAtIndex
from keyless.log.sequencer import Outcome, Pending, Sequencer
from keyless.log.witnessing import CheckpointPublisher, CheckpointSuperseded
from keyless.merkle import consistency_proof, inclusion_proof, leaf_hash
from keyless.storage import Storage, check_log_name
from keyless.storage.model import LogHead, StoredEntry

_log = logging.getLogger(__name__)

SeedEntry = bytes | tuple[bytes, bytes]
"""A seed: the leaf, or (leaf, bundle entry) when the bundle carries something else (static-ct)."""


#: Entry indexes are SQL BIGINTs (int64): nothing at or past 2**63 - 1 can exist.
_INDEX_LIMIT = (1 << 63) - 1
#: rounds of publishing before giving up: a superseded process waits for the checkpoint that
#: overtook it and only publishes again if that never got stored (its process died meanwhile)
_PUBLISH_ATTEMPTS = 4
#: first and longest pause between two reads of the published checkpoint while waiting for it
_POLL_FIRST, _POLL_MAX = 0.002, 0.05


@dataclass(frozen=True)
class AddResult:
    """What :meth:`TransparencyLog.add` returns: the entry's place and the proof of it."""

    index: int
    leaf_hash: bytes
    integrated_time: int  # unix seconds, stored with the entry
    duplicate: bool
    tree_size: int
    root_hash: bytes
    checkpoint: bytes  # the signed note that covers the entry
    #: proof of ``index`` in ``tree_size`` (RFC 9162 §2.1.3.1); empty if added with proof=False
    inclusion_proof: list[bytes]


@dataclass
class _Waiter:
    pending: Pending
    future: asyncio.Future[AddResult]
    proof: bool = True


class TransparencyLog:
    """One append-only Merkle log stored under ``name`` in ``storage``.

    ``origin`` is the checkpoint origin line (C2SP tlog-checkpoint); ``signer`` signs the notes.
    ``checkpoint_extensions`` returns extra body lines for each new checkpoint (Rekor v1 adds a
    timestamp line). ``seed`` entries are sequenced when the log is created (see module docstring).
    ``max_batch`` / ``batch_age`` / ``max_pending`` tune batching and back-pressure.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        name: str,
        origin: str,
        signer: NoteSigner,
        clock: Callable[[], float] = time.time,
        seed: Sequence[SeedEntry] = (),
        checkpoint_extensions: Callable[[], Sequence[str]] | None = None,
        max_batch: int = 4096,
        batch_age: float = 0.0,
        max_pending: int = 65536,
        publisher: CheckpointPublisher | None = None,
        republish_after: float = 5.0,
    ) -> None:
        self.name = check_log_name(name)
        self.origin = origin
        self._storage = storage
        self._store = storage.log_store
        self._clock = clock
        self._seed = list(seed)
        self._max_batch = max_batch
        self._batch_age = batch_age
        self._max_pending = max_pending
        self._queue: deque[_Waiter] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._head: LogHead | None = None
        #: wall-clock time at which this process first saw the current checkpoint
        self.head_changed_at: float | None = None
        self.nodes = NodeReader(
            lambda path: self._store.read_tile(self.name, path), self._head_size
        )
        self._sequencer = Sequencer(
            origin=origin,
            signer=signer,
            clock=clock,
            extensions=checkpoint_extensions,
            nodes=self.nodes,
        )
        self._proofs: set[asyncio.Task[None]] = set()
        self._publisher = publisher
        self._republish_after = republish_after
        self._published: LogHead | None = None

    # lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Recover (reconcile tiles with the head, repair lost tiles), seed a new log, start."""
        head = await self._storage.run_writer(self.name, self._open)
        self._note_head(head)
        if self._publisher is not None:
            await self._start_publishing(head)
        self._task = asyncio.create_task(self._integrate(), name=f"keyless-log-{self.name}")

    def _open(self) -> LogHead:
        with self._store.sequencing(self.name) as session:
            head = self._sequencer.sync(session)
            if head.size == 0 and self._seed:
                items = []
                for seed in self._seed:
                    leaf, bundle = seed if isinstance(seed, tuple) else (seed, None)
                    h = leaf_hash(leaf)
                    items.append(Pending(leaf, bundle, h, h))
                _outcomes, head = self._sequencer.sequence(session, items)
            else:
                # commits repairs of lost tiles found while loading, if any
                _outcomes, head = self._sequencer.sequence(session, [])
            return head

    async def close(self) -> None:
        """Finish the queued batches, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._proofs:
            await asyncio.gather(*self._proofs, return_exceptions=True)

    @property
    def pending(self) -> int:
        """Entries waiting to be sequenced (the ``keyless_log_pending`` gauge)."""
        return len(self._queue)

    # writes -----------------------------------------------------------------------------------
    async def add(
        self, leaf: bytes, *, bundle_entry: bytes | None = None, dedup_key: bytes | None = None,
        proof: bool = True,
    ) -> AddResult:  # fmt: skip
        """Append ``leaf``; return once it is durably sequenced and covered by a signed checkpoint.

        ``bundle_entry`` is what the entry bundle carries (default: the leaf); ``dedup_key``
        defaults to the leaf hash, and an entry whose key is already in the log is answered with
        the existing index and ``duplicate=True``. ``proof=False``: the caller does not need the
        inclusion proof, none is computed (``inclusion_proof`` is empty).
        """
        self._check_accepting()
        self._check_size(bundle_entry if bundle_entry is not None else leaf)
        h = leaf_hash(leaf)
        dedup = dedup_key if dedup_key is not None else h
        return await self._enqueue(Pending(leaf, bundle_entry, h, dedup), proof)

    async def add_at_index(
        self, entry_at: EntryAtIndex, *, dedup_key: bytes, proof: bool = True
    ) -> AddResult:
        """Append the entry ``entry_at(index)`` for the index the log assigns to it.

        C2SP static-ct-api: the MerkleTreeLeaf and the TileLeaf of a static CT log carry their
        own ``leaf_index``, so the entry can only be built once it is sequenced. ``entry_at``
        must be pure and its sizes independent of the index (it is probed once here, to refuse an
        oversized entry before it can fail a whole batch). An entry whose ``dedup_key`` is in the
        log is answered with the existing index and ``duplicate=True``, and ``proof`` is that of
        :meth:`add`.
        """
        self._check_accepting()
        leaf, bundle = entry_at(0)
        self._check_size(bundle)
        return await self._enqueue(
            Pending(leaf, bundle, leaf_hash(leaf), dedup_key, entry_at), proof
        )

    def _check_accepting(self) -> None:
        if self._task is None or self._closing:
            raise Unavailable(f"log {self.name} is not accepting entries (not started or closing)")
        if len(self._queue) >= self._max_pending:
            raise Pushback(
                f"log {self.name} has {len(self._queue)} entries waiting to be sequenced",
                retry_after=1.0,
            )

    @staticmethod
    def _check_size(bundle_entry: bytes) -> None:
        if len(bundle_entry) > MAX_ENTRY_SIZE:
            raise TooLarge(f"a log entry may be at most {MAX_ENTRY_SIZE} bytes (C2SP tlog-tiles)")

    async def _enqueue(self, pending: Pending, proof: bool) -> AddResult:
        future: asyncio.Future[AddResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiter(pending, future, proof))
        self._wake.set()
        return await future

    async def _integrate(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                if self._unpublished():
                    # a head the witnesses did not cosign yet: ask again while idle
                    try:
                        async with asyncio.timeout(self._republish_after):
                            await self._wake.wait()
                    except TimeoutError:
                        await self._try_publish()
                    continue
                await self._wake.wait()
                continue
            if self._batch_age > 0 and len(self._queue) < self._max_batch and not self._closing:
                deadline = loop.time() + self._batch_age
                while len(self._queue) < self._max_batch and loop.time() < deadline:
                    await asyncio.sleep(min(0.001, max(0.0, deadline - loop.time())))
            batch: list[_Waiter] = []
            try:
                outcomes, head = await self._storage.run_writer(self.name, self._sequence, batch)
            except Exception as exc:
                if not batch:  # failed before taking a batch (no write lock): fail the queue
                    batch = self._take()
                failures += 1
                _log.warning("log %s: batch of %d failed: %s", self.name, len(batch), exc)
                error = exc if isinstance(exc, StorageError) else StorageError(str(exc))
                for waiter in batch:
                    if not waiter.future.done():
                        waiter.future.set_exception(error)
                await asyncio.sleep(min(1.0, 0.01 * 2**failures))
                continue
            failures = 0
            self._note_head(head)
            if self._publisher is not None:
                try:
                    head = await self._publish(head)
                except (Unavailable, StorageError) as exc:  # the store of published ones too
                    for waiter in batch:
                        if not waiter.future.done():
                            waiter.future.set_exception(exc)
                    continue
            task = asyncio.create_task(self._answer(batch, outcomes, head))
            self._proofs.add(task)
            task.add_done_callback(self._proofs.discard)

    async def _start_publishing(self, head: LogHead) -> None:
        """Restore the last published checkpoint, then try to publish the current head."""
        try:
            await self._publish(head)
        except (Unavailable, StorageError) as exc:
            _log.warning("log %s: checkpoint %d not published yet: %s", self.name, head.size, exc)

    async def _latest_published(self) -> LogHead | None:
        """The newest checkpoint published for this log, by this process or another one serving
        the same storage (``--workers N``): the stored one if it is newer than ours."""
        assert self._publisher is not None
        note = await self._publisher.last_published(self.name)
        known = self._published
        if note is not None and (known is None or note != known.checkpoint):
            from keyless.formats.checkpoint import Checkpoint

            cp = Checkpoint.from_note(note)
            newer = known is None or cp.size > known.size
            # a stored checkpoint beyond the committed tree is not this tree's (e.g. a database
            # restored without its tiles): never served
            if newer and cp.size <= (await self.head()).size:
                self._published = LogHead(cp.size, cp.root_hash, note)
        return self._published

    def _unpublished(self) -> bool:
        head, published = self._head, self._published
        if self._publisher is None or head is None:
            return False
        return published is None or published.size < head.size

    async def _try_publish(self) -> None:
        head = self._head
        if head is None:
            return
        try:
            await self._publish(head)
        except (Unavailable, StorageError) as exc:
            _log.info("log %s: checkpoint %d still not published: %s", self.name, head.size, exc)

    async def _publish(self, head: LogHead) -> LogHead:
        """A published (cosigned) checkpoint covering ``head``: ``head``'s own, or a newer one
        another process published; Unavailable if none.

        Several processes sequencing one log (``--workers N``) each publish their batches. A
        witness that already cosigned a newer checkpoint of the same tree makes this one
        superseded: that newer checkpoint covers this batch, so the process waits for it to be
        stored rather than offering yet another one (two processes offering in turn could
        overtake each other at the witnesses without end). Only if it never gets stored (its
        process died meanwhile) is the newest committed head offered.
        """
        assert self._publisher is not None
        for _attempt in range(_PUBLISH_ATTEMPTS):
            published = self._published
            if published is None or published.size < head.size:
                published = await self._latest_published()
            if published is not None and published.size >= head.size:
                return published
            try:
                note = await self._publisher.publish(self.name, head, self.consistency_proof)
            except CheckpointSuperseded as exc:
                published = await self._await_published(head.size, exc.settle)
                if published is not None:
                    return published
                head = max(head, await self.head(), key=lambda h: h.size)
                continue
            published = LogHead(head.size, head.root_hash, note)
            if self._published is None or self._published.size < head.size:
                self._published = published
            return published
        raise Unavailable(
            f"log {self.name}: checkpoint {head.size} kept being superseded by checkpoints "
            "of other processes that were never stored",
            retry_after=1.0,
        )

    async def _await_published(self, size: int, within: float) -> LogHead | None:
        """The published checkpoint once it reaches ``size``; None after ``within`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        pause = _POLL_FIRST
        while True:
            published = await self._latest_published()
            if published is not None and published.size >= size:
                return published
            left = deadline - loop.time()
            if left <= 0:
                return None
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, _POLL_MAX)

    def _take(self) -> list[_Waiter]:
        return [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]

    def _sequence(self, batch: list[_Waiter]) -> tuple[list[Outcome], LogHead]:
        """One step over the entries queued once the session holds the log's write lock (they
        go into ``batch``): what arrived while another process (``--workers N``) held the lock
        joins this batch instead of waiting for the next one."""
        try:
            with self._store.sequencing(self.name) as session:
                batch.extend(self._take())
                return self._sequencer.sequence(session, [w.pending for w in batch])
        except BaseException:
            # the transaction may have failed after the batch was applied in memory (e.g. at
            # COMMIT): forget it all, the next step reloads the right edge from storage
            self._sequencer.edge = None
            self.nodes.forget()
            raise

    async def _answer(self, batch: list[_Waiter], outcomes: list[Outcome], head: LogHead) -> None:
        """Compute the inclusion proofs waiters asked for off the event loop, then wake them."""
        wanted = [o.index for w, o in zip(batch, outcomes, strict=True) if w.proof]
        computed: list[list[bytes]] = []
        try:
            if wanted:
                computed = await self._storage.run(self._proofs_for, wanted, head.size)
        except Exception as exc:
            error = exc if isinstance(exc, StorageError) else StorageError(str(exc))
            for waiter in batch:
                if not waiter.future.done():
                    waiter.future.set_exception(error)
            return
        proofs = iter(computed)
        for waiter, outcome in zip(batch, outcomes, strict=True):
            proof = next(proofs) if waiter.proof else []
            if waiter.future.done():
                continue
            waiter.future.set_result(
                AddResult(
                    index=outcome.index,
                    leaf_hash=outcome.leaf_hash,
                    integrated_time=outcome.integrated_time,
                    duplicate=outcome.duplicate,
                    tree_size=head.size,
                    root_hash=head.root_hash,
                    checkpoint=head.checkpoint,
                    inclusion_proof=proof,
                )
            )

    def _proofs_for(self, indexes: list[int], size: int) -> list[list[bytes]]:
        nodes = self.nodes
        return batch_inclusion_proofs(
            indexes, size, nodes.get_hash, lambda tile, width: nodes.tile_hashes(0, tile, width)
        )

    # reads ------------------------------------------------------------------------------------
    def _note_head(self, head: LogHead | None) -> None:
        if head is not None and (self._head is None or head.checkpoint != self._head.checkpoint):
            self.head_changed_at = time.time()
        self._head = head

    def last_seen_head(self) -> LogHead | None:
        """The newest head this process has committed or read, without a storage round trip
        (for metrics; other processes sharing the database may have moved it since)."""
        return self._head

    def _head_size(self) -> int:
        head = self._store.head(self.name)
        return head.size if head else 0

    async def head(self) -> LogHead:
        """The latest committed head (read from storage: other processes may have moved it)."""
        head = await self._storage.run(self._store.head, self.name)
        if head is None:
            raise NotFound(f"log {self.name} has not been created")
        self._note_head(head)
        return head

    async def checkpoint(self) -> bytes:
        """The latest signed checkpoint (C2SP signed note); with a publisher, the latest one it
        published (with the witnesses' cosignatures)."""
        if self._publisher is not None:
            published = await self._latest_published()
            if published is None:
                raise Unavailable(f"log {self.name} has no witnessed checkpoint yet")
            return published.checkpoint
        return (await self.head()).checkpoint

    async def tree(self) -> tuple[int, bytes]:
        """(size, root hash) of the latest checkpoint."""
        head = await self.head()
        return head.size, head.root_hash

    async def tile(self, level: int, index: int, width: int | None = None) -> bytes:
        """Hash tile ``(level, index)``, full or the first ``width`` hashes (C2SP tlog-tiles)."""
        _check_tile_args(level, index, width)
        return await self._storage.run(self._read_tile, level, index, width)

    def _committed_width(self, level: int, index: int, want: int, what: str) -> int:
        """The width tile ``(level, index)`` has at the committed head; NotFound if < ``want``.

        Reads are always answered from the tile version the committed head references, never
        from a leftover of a failed batch beyond it (which the next batch overwrites).
        """
        have = tile_width(level, index, self._head_size())
        if have < want:
            raise NotFound(f"{what} is beyond the tree")
        return have

    def _read_tile(self, level: int, index: int, width: int | None) -> bytes:
        want = TILE_WIDTH if width is None else width
        what = f"tile {tile_path(level, index, width)}"
        for _attempt in range(3):
            have = self._committed_width(level, index, want, what)
            path = tile_path(level, index, None if have == TILE_WIDTH else have)
            data = self._store.read_tile(self.name, path)
            if data is not None and len(data) >= HASH_SIZE * want:
                return data[: HASH_SIZE * want]
        raise StorageError(f"{what} is missing from storage; run `keyless log fsck`")

    async def entry_bundle(self, index: int, width: int | None = None) -> bytes:
        """Entry bundle ``index``, full or its first ``width`` entries (C2SP tlog-tiles)."""
        _check_tile_args(0, index, width)
        return await self._storage.run(self._read_bundle, index, width)

    def _read_bundle(self, index: int, width: int | None) -> bytes:
        want = TILE_WIDTH if width is None else width
        what = f"entry bundle {entries_path(index, width)}"
        for _attempt in range(3):
            have = self._committed_width(0, index, want, what)
            data = self._store.read_tile(self.name, entries_path(index, have))
            if data is not None:
                if have == want:
                    return data
                entries = decode_entry_bundle(data)
                if len(entries) >= want:
                    return encode_entry_bundle(entries[:want])
        raise StorageError(f"{what} is missing from storage; run `keyless log fsck`")

    async def entry(self, index: int) -> StoredEntry:
        """The stored entry at ``index`` (leaf, bundle entry, integrated time)."""
        if not 0 <= index < _INDEX_LIMIT:
            raise NotFound(f"no entry {index} in log {self.name}")
        found = await self._storage.run(self._store.entries, self.name, index, index + 1)
        if not found:
            raise NotFound(f"no entry {index} in log {self.name}")
        return found[0]

    async def entries(self, start: int, end: int) -> list[StoredEntry]:
        """Stored entries ``start ≤ index < end`` (at most what exists)."""
        if start < 0 or end < start:
            raise InvalidInput(f"bad entry range [{start}, {end})")
        if start >= _INDEX_LIMIT:
            return []
        end = min(end, _INDEX_LIMIT)
        return await self._storage.run(self._store.entries, self.name, start, end)

    async def index_of(self, key: bytes) -> int | None:
        """The index of the entry with this dedup key (or, failing that, this leaf hash)."""
        return await self._storage.run(self._store.index_of, self.name, key)

    async def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 audit path of ``index`` in the tree of ``tree_size`` leaves."""
        head = await self.head()
        if not 0 <= index < tree_size:
            raise InvalidInput(f"index {index} is not in a tree of size {tree_size}")
        if tree_size > head.size:
            raise NotFound(f"tree size {tree_size} is beyond the log's size {head.size}")
        return await self._storage.run(inclusion_proof, index, tree_size, self.nodes.get_hash)

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1 consistency proof between tree sizes ``first`` ≤ ``second``."""
        head = await self.head()
        if not 0 <= first <= second:
            raise InvalidInput(f"bad tree sizes {first} and {second}")
        if second > head.size:
            raise NotFound(f"tree size {second} is beyond the log's size {head.size}")
        return await self._storage.run(consistency_proof, first, second, self.nodes.get_hash)


def _check_tile_args(level: int, index: int, width: int | None) -> None:
    bad_width = width is not None and not 1 <= width <= TILE_WIDTH
    if not 0 <= level <= MAX_LEVEL or index < 0 or bad_width:
        raise InvalidInput(f"bad tile coordinates level={level} index={index} width={width}")
