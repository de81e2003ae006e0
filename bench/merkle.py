"""Benchmark of the Merkle core: leaves hashed into a tree, and proofs generated from tiles.

Run: ``.venv/bin/python bench/merkle.py [--leaves N] [--proofs N]``. Single-threaded; prints the
machine's core count and load, and each rate twice: by wall-clock time and by this process's CPU
time (the per-core figure, less distorted when other work shares the machine). Issue 2 targets:
≥ 500,000 leaves/s and ≥ 20,000 inclusion proofs/s from tiles, on one core.

Figures:

* ``leaf hash + append``: ``leaf_hashes`` of 21-byte entries plus ``CompactRange.extend``
  reporting the level ≥ 8 subtrees (what a tile-writing integrator does).
* ``append_tiles``: the same leaf hashes turned into C2SP tiles in 256-leaf batches.
* ``inclusion proofs``: random indices in the tiled tree, *hot* (shared tile cache and the tree's
  right edge, as the log engine serves them) and *no cache* (every proof reads and re-hashes its
  tiles); consistency proofs hot; and the tile access pattern of a 1e9-entry tree.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from hashlib import sha256

from keyless.formats.tiles import (
    TileCache,
    TileCoord,
    TileProver,
    append_tiles,
    reader_from_mapping,
)
from keyless.merkle import CompactRange, leaf_hashes, verify_inclusion


def _measure(label: str, count: int, unit: str, work: Callable[[], object]) -> None:
    """Run ``work`` once and print its rate by wall-clock and by process CPU time."""
    w0, c0 = time.perf_counter(), time.process_time()
    work()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    print(
        f"{label:<44} {count:>9,} {unit:<7} wall {wall:6.2f} s {count / wall:>11,.0f}/s"
        f"   cpu {cpu:6.2f} s {count / max(cpu, 1e-9):>11,.0f}/s"
    )


def main() -> None:
    """Run every figure once and print it."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--leaves", type=int, default=1_000_000)
    ap.add_argument("--proofs", type=int, default=20_000)
    args = ap.parse_args()
    n, p = args.leaves, args.proofs
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"cores: {os.cpu_count()} (benchmark is single-threaded); load average: {load}; "
        f"time: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"
    )

    entries = [i.to_bytes(8, "big") + b"keyless-entry" for i in range(n)]
    cr = CompactRange()
    hashes: list[bytes] = []

    def hash_and_append() -> None:
        hashes.extend(leaf_hashes(entries))
        cr.extend(hashes, min_level=8)

    _measure("leaf hash + append", n, "leaves", hash_and_append)
    root = cr.root()

    store: dict[tuple[int, int], bytes] = {}
    reader = reader_from_mapping(store)

    def write_tiles() -> None:
        for start in range(0, n, 256):
            for tile in append_tiles(start, hashes[start : start + 256], reader):
                store[(tile.level, tile.index)] = tile.data

    _measure("append_tiles", n, "leaves", write_tiles)

    rng = random.Random(1)
    indices = [rng.randrange(n) for _ in range(p)]
    edge = cr.hashes
    assert TileProver(n, reader, right_edge=edge).root() == root
    cache = TileCache(max_tiles=1 << 16)
    for i in indices:  # fill the cache once, as a long-running log would have
        TileProver(n, reader, right_edge=edge, cache=cache).inclusion_proof(i)

    def hot() -> None:
        for i in indices:
            TileProver(n, reader, right_edge=edge, cache=cache).inclusion_proof(i)

    reads = [0]

    def cold() -> None:
        for i in indices:
            prover = TileProver(n, reader, right_edge=edge)
            prover.inclusion_proof(i)
            reads[0] += prover.reads

    def consistency() -> None:
        for i in indices:
            TileProver(n, reader, right_edge=edge, cache=cache).consistency_proof(max(1, i))

    _measure("inclusion proofs, hot (cache + right edge)", p, "proofs", hot)
    _measure("inclusion proofs, no cache (right edge)", p, "proofs", cold)
    print(f"  no cache: {reads[0] / p:.2f} tile reads per proof")
    _measure("consistency proofs, hot (cache + right edge)", p, "proofs", consistency)

    for i in indices[:200]:  # the proofs are right, not just fast
        proof = TileProver(n, reader, right_edge=edge, cache=cache).inclusion_proof(i)
        verify_inclusion(hashes[i], i, n, proof, root)

    big = 10**9
    seen: list[TileCoord] = []

    def fake(level: int, index: int, width: int) -> bytes:
        seen.append(TileCoord(level, index, width))
        return sha256(f"{level}/{index}".encode()).digest() * width

    fake_edge = [sha256(b"edge").digest()] * big.bit_count()
    worst = 0
    for i in indices[:2000]:
        before = len(seen)
        TileProver(big, fake, right_edge=fake_edge).inclusion_proof(i * (big // n))
        worst = max(worst, len(seen) - before)
    print(f"1e9-entry tree: {len(seen) / 2000:.2f} tile reads per inclusion proof (max {worst})")


if __name__ == "__main__":
    main()
