"""Entries that name their own index (``TransparencyLog.add_at_index``, static-ct-api leaf_index).

The leaf is built by the sequencer once the index is known; everything a reader sees (stored
entry, entry bundle, hash tile, inclusion proof, leaf-hash lookup) must be that built leaf, on
every batch shape and across a restart.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from keyless import merkle
from keyless.errors import TooLarge
from keyless.formats.note_keys import NoteSigner
from keyless.formats.tiles import MAX_ENTRY_SIZE, decode_entry_bundle
from keyless.keys import InMemorySigner, generate_key
from keyless.log import EntryAtIndex, TransparencyLog
from keyless.storage import open_storage
from keyless.storage.memory import MemoryBackend

SIGNER = NoteSigner.ed25519("example.test/log", InMemorySigner(generate_key("ed25519")))


async def started(backend: MemoryBackend, **kw: int) -> TransparencyLog:
    storage = await open_storage("memory://", backend=backend)
    log = TransparencyLog(storage, name="log", origin="example.test/log", signer=SIGNER, **kw)
    await log.start()
    return log


def at(payload: bytes) -> EntryAtIndex:
    """An entry for ``payload``: leaf = payload | 5-byte index, bundle entry = "B" | leaf."""

    def build(index: int) -> tuple[bytes, bytes]:
        leaf = payload + index.to_bytes(5, "big")
        return leaf, b"B" + leaf

    return build


def key(payload: bytes) -> bytes:
    return hashlib.sha256(b"k" + payload).digest()


async def test_each_entry_carries_its_own_index_everywhere() -> None:
    log = await started(MemoryBackend(), max_batch=7)
    plain = await log.add(b"plain-0")
    results = await asyncio.gather(
        *(log.add_at_index(at(b"e%d" % i), dedup_key=key(b"e%d" % i)) for i in range(20)),
        log.add(b"plain-1"),
    )
    size, root = await log.tree()
    assert size == 22 and plain.index == 0
    assert sorted(r.index for r in results) == list(range(1, 22))
    stored = await log.entries(0, size)
    bundle = decode_entry_bundle(await log.entry_bundle(0, size))
    tile = await log.tile(0, 0, size)
    for r in results[:20]:
        entry = stored[r.index]
        assert entry.leaf[-5:] == r.index.to_bytes(5, "big")
        assert bundle[r.index] == b"B" + entry.leaf
        assert r.leaf_hash == merkle.leaf_hash(entry.leaf)
        assert tile[32 * r.index : 32 * r.index + 32] == r.leaf_hash
        merkle.verify_inclusion(r.leaf_hash, r.index, r.tree_size, r.inclusion_proof, r.root_hash)
        assert await log.index_of(r.leaf_hash) == r.index  # RFC 6962 get-proof-by-hash
        assert await log.index_of(key(entry.leaf[:-5])) == r.index
    assert merkle.root_from_leaf_hashes([merkle.leaf_hash(e.leaf) for e in stored]) == root
    await log.close()


async def test_duplicates_answer_the_existing_index_and_restart_keeps_the_entries() -> None:
    backend = MemoryBackend()
    log = await started(backend)
    first = await log.add_at_index(at(b"x"), dedup_key=key(b"x"))
    await log.add(b"filler")
    again = await log.add_at_index(at(b"x"), dedup_key=key(b"x"))
    assert again.duplicate and again.index == first.index == 0
    assert again.leaf_hash == first.leaf_hash
    await log.close()
    log = await started(backend)
    assert (await log.tree())[0] == 2
    after = await log.add_at_index(at(b"y"), dedup_key=key(b"y"))
    assert after.index == 2 and (await log.entry(2)).leaf == b"y" + (2).to_bytes(5, "big")
    assert (await log.add_at_index(at(b"x"), dedup_key=key(b"x"))).index == 0
    await log.close()


async def test_an_oversized_entry_is_refused_before_it_reaches_a_batch() -> None:
    log = await started(MemoryBackend())
    big = b"z" * MAX_ENTRY_SIZE
    with pytest.raises(TooLarge):
        await log.add_at_index(at(big), dedup_key=key(b"big"))
    assert (await log.tree())[0] == 0
    await log.close()


async def test_proof_false_skips_the_proof_only_for_the_entries_that_ask_so() -> None:
    log = await started(MemoryBackend())
    calls: list[list[int]] = []
    compute = log._proofs_for

    def proofs_for(indexes: list[int], size: int) -> list[list[bytes]]:
        calls.append(list(indexes))
        return compute(indexes, size)

    log._proofs_for = proofs_for  # type: ignore[method-assign]
    first = [log.add_at_index(at(b"p%d" % i), dedup_key=key(b"p%d" % i)) for i in range(2)]
    bare = [
        log.add_at_index(at(b"n%d" % i), dedup_key=key(b"n%d" % i), proof=False) for i in range(3)
    ]
    results = await asyncio.gather(*first, log.add(b"plain", proof=False), *bare)
    assert {r.tree_size for r in results} == {6}  # one batch
    with_proof, without = results[:2], results[2:]
    for r in with_proof:
        merkle.verify_inclusion(r.leaf_hash, r.index, r.tree_size, r.inclusion_proof, r.root_hash)
    assert all(r.inclusion_proof == [] for r in without)
    assert calls == [[r.index for r in with_proof]]
    # a batch where no entry wants a proof computes none
    assert (await log.add(b"alone", proof=False)).inclusion_proof == []
    assert len(calls) == 1
    await log.close()
