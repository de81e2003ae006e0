"""The log engine's published checkpoint, tiles and entry bundles, read back as a client of a
tlog-tiles log does: tiles by coordinates, hashes checked with keyless.merkle's in-memory tree."""

from __future__ import annotations

import asyncio
import random

from keyless.formats.checkpoint import open_checkpoint
from keyless.formats.note_keys import NoteSigner
from keyless.formats.tiles import HASH_SIZE, TILE_WIDTH, decode_entry_bundle, tile_width
from keyless.keys import InMemorySigner, generate_key
from keyless.log.engine import TransparencyLog
from keyless.merkle import (
    MemoryTree,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from keyless.storage import open_storage

ORIGIN = "localhost:3000/rekor"


async def test_engine_tiles_match_the_spec() -> None:
    signer = NoteSigner.ed25519(ORIGIN, InMemorySigner(generate_key("ed25519")))
    storage = await open_storage("memory://")
    log = TransparencyLog(storage, name="tiles-check", origin=ORIGIN, signer=signer)
    await log.start()
    try:
        rng = random.Random(5)
        leaves: list[bytes] = []
        sizes: list[tuple[int, bytes]] = []
        while len(leaves) < 70_000:
            count = rng.choice([1, 300, 4000])
            batch = [  # unique entries (the engine deduplicates) of varied lengths
                (len(leaves) + i).to_bytes(4, "big") + rng.randbytes(rng.randrange(0, 90))
                for i in range(count)
            ]
            await asyncio.gather(*(log.add(leaf) for leaf in batch))
            leaves.extend(batch)
            cp = open_checkpoint(await log.checkpoint(), signer.verifier(), origin=ORIGIN)
            sizes.append((cp.size, cp.root_hash))
        size, root = sizes[-1]
        assert size == len(leaves)

        async def read(level: int, index: int) -> list[bytes]:
            """The hashes of tile (level, index) as a client fetches it: full, or .p/W."""
            w = tile_width(level, index, size)
            data = await log.tile(level, index, None if w == TILE_WIDTH else w)
            assert len(data) == HASH_SIZE * w
            return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]

        # the level-0 tiles hold the leaf hashes, and the root from them is the checkpoint's
        hashes = [leaf_hash(leaf) for leaf in leaves]
        from_tiles = [h for n in range(-(-size // TILE_WIDTH)) for h in await read(0, n)]
        assert from_tiles == hashes
        assert root_from_leaf_hashes(from_tiles) == root
        # a level-1 tile holds the roots of the full level-0 tiles below it
        level1 = await read(1, 0)
        for n in rng.sample(range(len(level1)), 20):
            assert level1[n] == root_from_leaf_hashes(hashes[n * 256 : n * 256 + 256])

        # entry bundles hash to the level-0 tiles, in order (C2SP tlog-tiles "Log entries")
        for n in rng.sample(range(size // TILE_WIDTH + 1), 20):
            w = tile_width(0, n, size)
            bundle = decode_entry_bundle(
                await log.entry_bundle(n, None if w == TILE_WIDTH else w), w
            )
            assert [leaf_hash(e) for e in bundle] == hashes[n * 256 : n * 256 + w]

        # a client's proofs from the tiles verify and agree with the engine's own proofs
        client_tree = MemoryTree(from_tiles)
        for index in rng.sample(range(size), 30):
            proof = client_tree.inclusion_proof(index, size)
            verify_inclusion(hashes[index], index, size, proof, root)
            assert proof == await log.inclusion_proof(index, size)
        for first, first_root in sizes[:-1]:
            proof = await log.consistency_proof(first, size)
            verify_consistency(first, size, first_root, root, proof)
    finally:
        await log.close()
        await storage.close()
