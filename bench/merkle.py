"""Benchmark of the Merkle core: leaves hashed into a tree, and proofs generated from tiles.

Run: ``.venv/bin/python bench/merkle.py [--leaves N] [--proofs N]``. Single-threaded; prints the
machine's core count because the figures are per core (issue 2 targets: ≥ 500,000 leaves/s and
≥ 20,000 inclusion proofs/s from tiles).

Figures:

* ``leaf hash + append``: ``leaf_hash`` of 16-byte entries plus ``CompactRange.extend`` reporting
  the level ≥ 8 subtrees (what a tile-writing integrator does).
* ``append_tiles``: the same leaves turned into C2SP tiles in 256-leaf batches.
* ``inclusion proofs``: random indices in the tiled tree, three ways: *hot* (shared tile cache and
  the tree's right edge, as the log engine serves them), *warm right edge only* (every proof reads
  and re-hashes its tiles), and a *1e9-entry tree* access pattern (tile reads per proof).
"""

from __future__ import annotations

import argparse
import os
import random
import time
from hashlib import sha256

from keyless.formats.tiles import (
    TileCache,
    TileCoord,
    TileProver,
    append_tiles,
    reader_from_mapping,
)
from keyless.merkle import CompactRange, leaf_hashes, verify_inclusion


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s"


def main() -> None:
    """Run every figure once and print it."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--leaves", type=int, default=1_000_000)
    ap.add_argument("--proofs", type=int, default=20_000)
    args = ap.parse_args()
    n, p = args.leaves, args.proofs
    print(
        f"cores: {os.cpu_count()} (benchmark is single-threaded); "
        f"time: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"
    )

    entries = [i.to_bytes(8, "big") + b"keyless-entry" for i in range(n)]
    t0 = time.perf_counter()
    hashes = leaf_hashes(entries)
    cr = CompactRange()
    cr.extend(hashes, min_level=8)
    root = cr.root()
    t1 = time.perf_counter()
    print(f"leaf hash + append   {n:>9,} leaves  {t1 - t0:6.2f} s  {_rate(n, t1 - t0)}")

    store: dict[tuple[int, int], bytes] = {}
    reader = reader_from_mapping(store)
    t0 = time.perf_counter()
    for start in range(0, n, 256):
        for tile in append_tiles(start, hashes[start : start + 256], reader):
            store[(tile.level, tile.index)] = tile.data
    t1 = time.perf_counter()
    print(f"append_tiles         {n:>9,} leaves  {t1 - t0:6.2f} s  {_rate(n, t1 - t0)}")

    rng = random.Random(1)
    indices = [rng.randrange(n) for _ in range(p)]
    edge = cr.hashes
    assert TileProver(n, reader, right_edge=edge).root() == root

    cache = TileCache(max_tiles=1 << 16)
    for label, make in [
        ("hot (cache + right edge)", lambda: TileProver(n, reader, right_edge=edge, cache=cache)),
        ("no cache, right edge", lambda: TileProver(n, reader, right_edge=edge)),
    ]:
        reads = 0
        if "hot" in label:  # fill the cache once, as a long-running log would have
            for i in indices:
                make().inclusion_proof(i)
        t0 = time.perf_counter()
        for i in indices:
            prover = make()
            prover.inclusion_proof(i)
            reads += prover.reads
        t1 = time.perf_counter()
        print(
            f"inclusion proofs, {label:<25} {p:>7,}  {t1 - t0:6.2f} s  {_rate(p, t1 - t0)}"
            f"  ({reads / p:.2f} tile reads/proof)"
        )

    firsts = [max(1, i) for i in indices]
    t0 = time.perf_counter()
    for f in firsts:
        TileProver(n, reader, right_edge=edge, cache=cache).consistency_proof(f)
    t1 = time.perf_counter()
    print(
        f"consistency proofs, hot (cache + right edge) {p:>7,}  "
        f"{t1 - t0:6.2f} s  {_rate(p, t1 - t0)}"
    )

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
