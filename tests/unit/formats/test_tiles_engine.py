"""The log engine's published checkpoint, tiles and entry bundles, read back through the
independent C2SP code of keyless.formats (a client's view of a tlog-tiles log)."""

from __future__ import annotations

import asyncio
import random

from keyless.formats.checkpoint import NoteSigner, open_checkpoint
from keyless.formats.tiles import (
    TILE_WIDTH,
    TileProver,
    decode_entry_bundle,
    fetch_tiles,
    inclusion_tiles,
    parse_hash_tile,
    root_tiles,
    tile_width,
)
from keyless.keys import InMemorySigner, generate_key
from keyless.log.engine import TransparencyLog
from keyless.merkle import leaf_hash, verify_consistency, verify_inclusion
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

        async def read(level: int, index: int, width: int) -> bytes:
            return await log.tile(level, index, None if width == TILE_WIDTH else width)

        # the root from the tiles alone equals the signed checkpoint's
        prover = TileProver(size, await fetch_tiles(root_tiles(size), read))
        assert prover.root() == root

        # entry bundles hash to the level-0 tiles, in order (C2SP tlog-tiles "Log entries")
        hashes = [leaf_hash(leaf) for leaf in leaves]
        for n in rng.sample(range(size // TILE_WIDTH + 1), 20):
            w = tile_width(0, n, size)
            bundle = decode_entry_bundle(
                await log.entry_bundle(n, None if w == TILE_WIDTH else w), w
            )
            assert [leaf_hash(e) for e in bundle] == hashes[n * 256 : n * 256 + w]
            assert parse_hash_tile(await read(0, n, w), w) == hashes[n * 256 : n * 256 + w]

        # client-side proofs from tiles verify and agree with the engine's own proofs
        for index in rng.sample(range(size), 30):
            reader = await fetch_tiles(inclusion_tiles(index, size), read)
            proof = TileProver(size, reader).inclusion_proof(index)
            verify_inclusion(hashes[index], index, size, proof, root)
            assert proof == await log.inclusion_proof(index, size)
        for first, first_root in sizes[:-1]:
            proof = await log.consistency_proof(first, size)
            verify_consistency(first, size, first_root, root, proof)
    finally:
        await log.close()
        await storage.close()
