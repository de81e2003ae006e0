"""The log engine's and storage's contract, run against every storage backend.

One suite, every backend: memory, SQLite (+ tile files) and PostgreSQL (a throwaway cluster from
tests/pgcluster.py). The ``opener`` fixture opens the *same* database again each time it is called,
as a restarted process would (for memory: the same in-process backend object).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from keyless import merkle
from keyless.errors import Conflict, InvalidInput, NotFound, Pushback, TooLarge
from keyless.formats.checkpoint import Checkpoint
from keyless.formats.note import SignedNote
from keyless.formats.note_keys import NoteSigner
from keyless.formats.tiles import decode_entry_bundle
from keyless.keys import InMemorySigner, generate_key
from keyless.log import AddResult, TransparencyLog
from keyless.storage import Storage, open_storage
from keyless.storage.memory import MemoryBackend
from keyless.storage.model import Batch, LogHead

Opener = Callable[[], Awaitable[Storage]]  # opens the same database again, as a restart would


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def opener(
    backend_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Opener]:
    opened: list[Storage] = []
    url = ""  # what `keyless log fsck` is given (memory has no URL another process could open)
    if backend_kind == "memory":
        memory = MemoryBackend()

        async def open_memory() -> Storage:
            return await open_storage("memory://", backend=memory)

        factory: Opener = open_memory
    elif backend_kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'keyless.db'}"
        sqlite_url = url

        async def open_sqlite() -> Storage:
            return await open_storage(sqlite_url, data_dir=tmp_path)

        factory = open_sqlite
    else:
        cluster: Any = request.getfixturevalue("postgres_cluster")
        pg_url = url = cluster.create_database()

        async def open_pg() -> Storage:
            return await open_storage(pg_url)

        factory = open_pg

    async def tracked() -> Storage:
        storage = await factory()
        opened.append(storage)
        return storage

    tracked.url = url  # type: ignore[attr-defined]
    yield tracked
    for storage in opened:
        await storage.close()


@pytest.fixture
async def storage(opener: Opener) -> Storage:
    return await opener()


@pytest.fixture(scope="session")
def note_signer() -> NoteSigner:
    return NoteSigner.ed25519("example.test/log", InMemorySigner(generate_key("ed25519")))


SEED = b"keyless seed entry"


def make_log(
    storage: Storage, signer: NoteSigner, name: str = "rekor-v2", max_pending: int = 65536
) -> TransparencyLog:
    return TransparencyLog(
        storage,
        name=name,
        origin="example.test/log",
        signer=signer,
        seed=[SEED],
        max_pending=max_pending,
    )


@pytest.fixture
async def log(storage: Storage, note_signer: NoteSigner) -> AsyncIterator[TransparencyLog]:
    tlog = make_log(storage, note_signer)
    await tlog.start()
    yield tlog
    await tlog.close()


def check_result(result: AddResult, signer: NoteSigner, leaf: bytes) -> Checkpoint:
    """The result proves ``leaf`` under a correctly signed checkpoint of the same tree."""
    assert result.leaf_hash == merkle.leaf_hash(leaf)
    merkle.verify_inclusion(
        result.leaf_hash, result.index, result.tree_size, result.inclusion_proof, result.root_hash
    )
    note = SignedNote.parse(result.checkpoint)
    signer.verifier().verify(note)
    checkpoint = Checkpoint.from_text(note.text)
    assert (checkpoint.origin, checkpoint.size, checkpoint.root_hash) == (
        "example.test/log",
        result.tree_size,
        result.root_hash,
    )
    return checkpoint


async def test_add_returns_a_proof_under_a_signed_checkpoint(
    log: TransparencyLog, note_signer: NoteSigner
) -> None:
    before = int(time.time())
    result = await log.add(b"first real entry")
    check_result(result, note_signer, b"first real entry")
    # interop.md §5 gotcha 1: no real entry at index 0, no 1-leaf proof
    assert result.index == 1 and result.tree_size == 2 and len(result.inclusion_proof) == 1
    assert not result.duplicate
    assert before <= result.integrated_time <= int(time.time())
    stored = await log.entry(result.index)
    assert stored.leaf == b"first real entry"
    assert stored.integrated_time == result.integrated_time
    assert (await log.entry(0)).leaf == SEED
    assert await log.tree() == (2, result.root_hash)
    assert await log.checkpoint() == result.checkpoint


async def test_concurrent_adds_get_distinct_contiguous_indexes(
    log: TransparencyLog, note_signer: NoteSigner
) -> None:
    leaves = [b"entry %d" % i for i in range(700)]
    results = await asyncio.gather(*(log.add(leaf) for leaf in leaves))
    assert sorted(r.index for r in results) == list(range(1, 701))
    for leaf, result in zip(leaves, results, strict=True):
        check_result(result, note_signer, leaf)
    size, root = await log.tree()
    assert size == 701
    tree = merkle.MemoryTree([merkle.leaf_hash(SEED)])
    for i in range(1, size):
        tree.append(merkle.leaf_hash((await log.entry(i)).leaf))
    assert tree.root() == root


async def test_duplicates_return_the_existing_entry(
    log: TransparencyLog, note_signer: NoteSigner
) -> None:
    first = await log.add(b"same")
    again = await log.add(b"same")
    assert again.duplicate and again.index == first.index
    assert again.integrated_time == first.integrated_time
    check_result(again, note_signer, b"same")
    # two identical entries in the same batch
    a, b = await asyncio.gather(log.add(b"twin"), log.add(b"twin"))
    assert a.index == b.index and a.duplicate != b.duplicate
    # a caller-chosen dedup key (the CT personality dedups by certificate, not by leaf)
    c1 = await log.add(b"leaf one", dedup_key=b"K" * 32)
    c2 = await log.add(b"leaf two", dedup_key=b"K" * 32)
    assert c2.duplicate and c2.index == c1.index
    assert await log.index_of(b"K" * 32) == c1.index
    assert await log.index_of(merkle.leaf_hash(b"leaf one")) == c1.index
    assert await log.index_of(merkle.leaf_hash(b"same")) == first.index
    assert await log.index_of(b"\x00" * 32) is None


async def test_bundle_entry_goes_to_the_entry_bundle(log: TransparencyLog) -> None:
    result = await log.add(b"merkle tree leaf", bundle_entry=b"tile leaf")
    stored = await log.entry(result.index)
    assert stored.leaf == b"merkle tree leaf" and stored.bundle_entry == b"tile leaf"
    bundle = decode_entry_bundle(await log.entry_bundle(0, result.tree_size))
    assert bundle[result.index] == b"tile leaf"
    assert bundle[0] == SEED


async def test_tiles_and_bundles_full_and_partial(log: TransparencyLog) -> None:
    leaves = [b"t%d" % i for i in range(300)]
    for chunk in range(0, 300, 100):
        await asyncio.gather(*(log.add(leaf) for leaf in leaves[chunk : chunk + 100]))
    size, _root = await log.tree()
    assert size == 301
    hashes = [merkle.leaf_hash(SEED)] + [merkle.leaf_hash(leaf) for leaf in leaves]
    full = await log.tile(0, 0)
    assert full == b"".join(hashes[:256])
    assert await log.tile(0, 0, 256) == full
    assert await log.tile(0, 0, 17) == full[: 17 * 32]  # served by truncation
    assert await log.tile(0, 1, 45) == b"".join(hashes[256:301])
    assert await log.tile(0, 1, 10) == b"".join(hashes[256:266])
    assert await log.tile(1, 0, 1) == merkle.root_from_leaf_hashes(hashes[:256])
    with pytest.raises(NotFound):
        await log.tile(0, 1)  # not full yet
    with pytest.raises(NotFound):
        await log.tile(0, 1, 46)  # beyond the tree
    with pytest.raises(NotFound):
        await log.tile(1, 0, 2)
    with pytest.raises(InvalidInput):
        await log.tile(0, 0, 0)
    assert decode_entry_bundle(await log.entry_bundle(0)) == [SEED, *leaves[:255]]
    assert decode_entry_bundle(await log.entry_bundle(1, 45)) == leaves[255:300]
    assert decode_entry_bundle(await log.entry_bundle(1, 3)) == leaves[255:258]
    with pytest.raises(NotFound):
        await log.entry_bundle(2, 1)
    with pytest.raises(NotFound):
        await log.entry(301)
    for huge in ((1 << 63) - 1, 1 << 63, 1 << 64):  # past any SQL BIGINT: not found, not a crash
        with pytest.raises(NotFound):
            await log.entry(huge)
        assert await log.entries(huge, huge + 5) == []


async def test_proofs_between_any_sizes(log: TransparencyLog) -> None:
    checkpoints: list[tuple[int, bytes]] = []
    for round_ in range(6):
        results = await asyncio.gather(*(log.add(b"r%d-%d" % (round_, i)) for i in range(90)))
        checkpoints.append((results[0].tree_size, results[0].root_hash))
    size, root = await log.tree()
    for index in (0, 1, 200, 255, 256, size - 1):
        entry = await log.entry(index)
        proof = await log.inclusion_proof(index, size)
        merkle.verify_inclusion(merkle.leaf_hash(entry.leaf), index, size, proof, root)
    for (s1, r1), (s2, r2) in itertools.pairwise(checkpoints):
        merkle.verify_consistency(s1, s2, r1, r2, await log.consistency_proof(s1, s2))
        merkle.verify_consistency(s1, size, r1, root, await log.consistency_proof(s1, size))
    old_size, old_root = checkpoints[2]
    entry = await log.entry(17)
    merkle.verify_inclusion(
        merkle.leaf_hash(entry.leaf),
        17,
        old_size,
        await log.inclusion_proof(17, old_size),
        old_root,
    )
    with pytest.raises(NotFound):
        await log.inclusion_proof(1, size + 1)
    with pytest.raises(InvalidInput):
        await log.inclusion_proof(size, size)
    with pytest.raises(NotFound):
        await log.consistency_proof(1, size + 5)


async def test_restart_continues_the_same_tree(opener: Opener, note_signer: NoteSigner) -> None:
    storage = await opener()
    log = make_log(storage, note_signer)
    await log.start()
    results = await asyncio.gather(*(log.add(b"before %d" % i) for i in range(300)))
    size1, root1 = await log.tree()
    checkpoint1 = await log.checkpoint()
    await log.close()
    await storage.close()

    storage2 = await opener()
    log2 = make_log(storage2, note_signer)
    await log2.start()
    assert await log2.checkpoint() == checkpoint1  # no new checkpoint of the same size
    again = await log2.add(b"before 7")
    assert again.duplicate and again.index == results[7].index
    after = await log2.add(b"after restart")
    assert after.index == size1
    merkle.verify_consistency(
        size1,
        after.tree_size,
        root1,
        after.root_hash,
        await log2.consistency_proof(size1, after.tree_size),
    )
    assert (await log2.entry(0)).leaf == SEED  # seeded once only
    await log2.close()


async def test_two_writers_on_one_database_never_fork(
    opener: Opener, note_signer: NoteSigner
) -> None:
    """Two engines on the same database (as two processes would be) share one tree."""
    s1, s2 = await opener(), await opener()
    log1, log2 = make_log(s1, note_signer), make_log(s2, note_signer)
    await log1.start()
    await log2.start()
    results = await asyncio.gather(
        *(log1.add(b"one %d" % i) for i in range(150)),
        *(log2.add(b"two %d" % i) for i in range(150)),
        log1.add(b"both"),
        log2.add(b"both"),
    )
    indexes = [r.index for r in results if not r.duplicate]
    assert sorted(indexes) == list(range(1, 302))
    size, root = await log1.tree()
    assert (size, root) == await log2.tree()
    for r in results:
        merkle.verify_inclusion(r.leaf_hash, r.index, r.tree_size, r.inclusion_proof, r.root_hash)
        merkle.verify_consistency(
            r.tree_size, size, r.root_hash, root, await log1.consistency_proof(r.tree_size, size)
        )
    await log1.close()
    await log2.close()


async def test_logs_in_one_storage_are_independent(
    storage: Storage, note_signer: NoteSigner
) -> None:
    ct = make_log(storage, note_signer, name="ctlog")
    rekor = make_log(storage, note_signer, name="rekor-v1")
    await ct.start()
    await rekor.start()
    a = await ct.add(b"shared bytes")
    b = await rekor.add(b"shared bytes")
    assert not a.duplicate and not b.duplicate and a.index == b.index == 1
    await rekor.add(b"only rekor")
    assert (await ct.tree())[0] == 2 and (await rekor.tree())[0] == 3
    assert sorted(storage.log_store.logs()) == ["ctlog", "rekor-v1"]
    await ct.close()
    await rekor.close()


async def test_checkpoint_compare_and_swap(storage: Storage, note_signer: NoteSigner) -> None:
    log = make_log(storage, note_signer)
    await log.start()
    await log.add(b"x")
    head = await log.head()
    await log.close()

    def stale_commit() -> None:
        with storage.log_store.sequencing("rekor-v2") as session:
            forged = LogHead(head.size, b"\x07" * 32, b"another checkpoint of the same size\n")
            session.commit(Batch(old_size=head.size - 1, head=forged, entries=(), tiles={}))

    def same_size_different_note() -> None:
        with storage.log_store.sequencing("rekor-v2") as session:
            forged = LogHead(head.size, b"\x07" * 32, b"another checkpoint of the same size\n")
            session.commit(Batch(old_size=head.size, head=forged, entries=(), tiles={}))

    with pytest.raises(Conflict):
        await storage.run_writer("rekor-v2", stale_commit)
    with pytest.raises(Conflict):
        await storage.run_writer("rekor-v2", same_size_different_note)
    assert await storage.run(storage.log_store.head, "rekor-v2") == head


async def test_limits(storage: Storage, note_signer: NoteSigner) -> None:
    log = make_log(storage, note_signer, max_pending=5)
    await log.start()
    with pytest.raises(TooLarge):
        await log.add(b"x" * 70000)
    tasks = [asyncio.ensure_future(log.add(b"p%d" % i)) for i in range(5)]
    await asyncio.sleep(0)
    with pytest.raises(Pushback):
        await log.add(b"one too many")
    await asyncio.gather(*tasks)
    await log.close()


async def test_search_index(storage: Storage) -> None:
    await storage.search_index.add("rekor-v1", "sha256:abc", 5)
    await storage.search_index.add("rekor-v1", "sha256:abc", 3)
    await storage.search_index.add("rekor-v1", "sha256:abc", 5)
    await storage.search_index.add_many("rekor-v1", [("alice@example.com", 3), ("sha256:def", 9)])
    await storage.search_index.add("rekor-v2", "sha256:abc", 1)
    assert await storage.search_index.lookup("rekor-v1", "sha256:abc") == [3, 5]
    assert await storage.search_index.lookup("rekor-v1", "alice@example.com") == [3]
    assert await storage.search_index.lookup("rekor-v2", "sha256:abc") == [1]
    assert await storage.search_index.lookup("rekor-v1", "nothing") == []


async def test_key_value_store(storage: Storage) -> None:
    kv = storage.kv
    now = time.time()
    assert await kv.put_if_absent("ca-token", "t1", b"first", now + 60) is None
    assert await kv.put_if_absent("ca-token", "t1", b"second", now + 60) == b"first"
    assert await kv.get("ca-token", "t1") == b"first"
    assert await kv.get("other", "t1") is None
    # an expired value reads as absent and can be replaced
    assert await kv.put_if_absent("codes", "c", b"old", now - 1) is None
    assert await kv.get("codes", "c") is None
    assert await kv.put_if_absent("codes", "c", b"new", now + 60) is None
    assert await kv.get("codes", "c") == b"new"
    await kv.delete("codes", "c")
    await kv.delete("codes", "never there")
    assert await kv.get("codes", "c") is None


async def test_put_if_absent_is_atomic(storage: Storage) -> None:
    results = await asyncio.gather(
        *(storage.kv.put_if_absent("race", "k", b"v%d" % i, time.time() + 60) for i in range(20))
    )
    assert sum(r is None for r in results) == 1
    winner = await storage.kv.get("race", "k")
    assert all(r == winner for r in results if r is not None)


async def test_replace_is_a_compare_and_set(storage: Storage) -> None:
    kv = storage.kv
    later = time.time() + 60
    assert not await kv.replace("cas", "k", b"v0", b"v1", later)  # absent: nothing to compare
    assert await kv.put_if_absent("cas", "k", b"v0", later) is None
    assert not await kv.replace("cas", "k", b"other", b"v1", later)
    assert await kv.get("cas", "k") == b"v0"
    assert await kv.replace("cas", "k", b"v0", b"v1", later)
    assert await kv.get("cas", "k") == b"v1"
    # of many processes replacing the same value, exactly one wins
    results = await asyncio.gather(
        *(kv.replace("cas", "k", b"v1", b"w%d" % i, later) for i in range(20))
    )
    assert sum(results) == 1
    assert await kv.get("cas", "k") == b"w%d" % results.index(True)
    # an expired value is absent: not replaced
    assert await kv.put_if_absent("cas", "gone", b"old", time.time() - 1) is None
    assert not await kv.replace("cas", "gone", b"old", b"new", later)
    assert await kv.get("cas", "gone") is None


async def test_fsck_passes_after_writes(
    log: TransparencyLog, storage: Storage, opener: Opener, capsys: pytest.CaptureFixture[str]
) -> None:
    from keyless._cli.main import main
    from keyless.log.fsck import fsck_log

    for chunk in range(3):
        await asyncio.gather(*(log.add(b"f%d-%d" % (chunk, i)) for i in range(120)))
    report = await storage.run(fsck_log, storage.log_store, "rekor-v2")
    assert report.ok, report.problems
    assert report.size == 361
    url = opener.url  # type: ignore[attr-defined]
    if url:  # the CLI, as an operator runs it against the database
        assert await asyncio.to_thread(main, ["log", "fsck", url]) == 0
        assert "rekor-v2: size 361" in capsys.readouterr().out


def stored_events(storage: Storage) -> int:
    """Event rows the backend holds, expired ones included (what pruning must bound)."""
    kv: Any = storage.backend.kv
    if isinstance(storage.backend, MemoryBackend):
        return len(kv.events)
    row = kv._connections.get().execute("SELECT count(*) FROM kv_events").fetchone()
    return int(row[0])


async def test_event_windows(storage: Storage) -> None:
    kv, now = storage.kv, 1_800_000_000.0
    for i in range(3):
        assert await kv.reserve_event("t", [("a", 3), ("b", 5)], f"e{i}", now + i, 60) is None
    # "a" is full: nothing is recorded, not even under "b"; the answer names "a" and its oldest
    assert await kv.reserve_event("t", [("b", 5), ("a", 3)], "e3", now + 3, 60) == ("a", now)
    assert await kv.reserve_event("t", [("b", 4)], "e4", now + 4, 60) is None  # b had 3, not 4
    assert await kv.reserve_event("t", [("b", 4)], "e5", now + 5, 60) == ("b", now)
    assert await kv.reserve_event("other", [("a", 1)], "e0", now, 60) is None  # namespaces
    # withdrawing one event frees one place; clearing a key frees all of them
    await kv.withdraw_event("t", "e1", ["a", "b"])
    assert await kv.reserve_event("t", [("a", 3)], "e6", now + 6, 60) is None
    assert await kv.reserve_event("t", [("a", 3)], "e7", now + 7, 60) == ("a", now)
    await kv.withdraw_event("t", "unknown", ["a"], clear=["b"])
    assert await kv.reserve_event("t", [("b", 1)], "e8", now + 8, 60) is None
    # the window slides: an event counts for `window` seconds after its time
    assert await kv.reserve_event("t", [("a", 3)], "e9", now + 60, 60) is None
    assert await kv.reserve_event("t", [("a", 3)], "e10", now + 61, 60) == ("a", now + 2)


async def test_event_reservations_are_atomic_across_processes(opener: Opener) -> None:
    """Two openings of one database (two processes) race 40 reservations: the limit holds."""
    first, second = await opener(), await opener()
    now = time.time()
    results = await asyncio.gather(*(
        (first if i % 2 else second).kv.reserve_event(
            "race", [("ip", 20), ("pair", 5)], f"e{i}", now, 300)
        for i in range(40)
    ))  # fmt: skip
    assert sum(r is None for r in results) == 5
    assert all(r == ("pair", now) for r in results if r is not None)


async def test_expired_events_are_pruned(storage: Storage) -> None:
    kv, now = storage.kv, 1_800_000_000.0
    for i in range(300):  # keys nobody uses again: swept every 256 reservations
        assert await kv.reserve_event("t", [(f"k{i}", 1)], "e", now + i, 10) is None
    assert stored_events(storage) < 300
    later = now + 1000
    for i in range(256):  # a key used again: its own expired events go at once
        assert await kv.reserve_event("t", [("k1", 1)], f"e{i}", later + 10 * i, 10) is None
    assert stored_events(storage) <= 2
