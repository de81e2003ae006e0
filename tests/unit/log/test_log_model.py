"""Property test: the engine against a plain in-memory model, with restarts and failed commits."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyless import merkle
from keyless.errors import StorageError
from keyless.formats.note_keys import NoteSigner
from keyless.keys import InMemorySigner, generate_key
from keyless.log import TransparencyLog
from keyless.storage import open_storage
from keyless.storage.memory import MemoryBackend

SIGNER = NoteSigner.ed25519("model.test/log", InMemorySigner(generate_key("ed25519")))

operation = st.one_of(
    st.tuples(st.just("add"), st.lists(st.integers(0, 60), min_size=1, max_size=300)),
    st.tuples(st.just("restart"), st.just([])),
    st.tuples(st.just("fail"), st.lists(st.integers(1000, 1010), min_size=1, max_size=5)),
)


async def run(operations: list[tuple[str, list[int]]]) -> None:
    backend = MemoryBackend()

    async def start() -> TransparencyLog:
        storage = await open_storage("memory://", backend=backend)
        log = TransparencyLog(
            storage, name="model", origin="model.test/log", signer=SIGNER, seed=[b"seed"]
        )
        await log.start()
        return log

    log = await start()
    model = merkle.MemoryTree([merkle.leaf_hash(b"seed")])
    index_of: dict[bytes, int] = {b"seed": 0}
    for kind, values in operations:
        if kind == "restart":
            await log.close()
            log = await start()
            continue
        leaves = [b"leaf %d" % v for v in values]
        if kind == "fail":
            backend.faults.fail("commit.tiles_only")
            results = await asyncio.gather(*(log.add(x) for x in leaves), return_exceptions=True)
            assert all(isinstance(r, StorageError) for r in results)
            continue
        results = await asyncio.gather(*(log.add(x) for x in leaves))
        for leaf in leaves:  # the engine sequences a batch in submission order
            if leaf not in index_of:
                index_of[leaf] = model.append(merkle.leaf_hash(leaf))
        for leaf, result in zip(leaves, results, strict=True):
            assert result.index == index_of[leaf]
            merkle.verify_inclusion(
                result.leaf_hash,
                result.index,
                result.tree_size,
                result.inclusion_proof,
                result.root_hash,
            )
            assert model.root(result.tree_size) == result.root_hash
        assert await log.tree() == (model.size, model.root())
    size = model.size
    for index in range(0, size, 7):
        assert await log.inclusion_proof(index, size) == model.inclusion_proof(index, size)
    for first in range(0, size, 29):
        assert await log.consistency_proof(first, size) == model.consistency_proof(first, size)
    await log.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=1, max_size=8))
def test_engine_matches_the_model(operations: list[tuple[str, list[int]]]) -> None:
    asyncio.run(run(operations))
