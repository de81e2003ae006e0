"""Benchmark of the Merkle core: leaves hashed into a tree, and proofs generated from tiles.

Run: ``.venv/bin/python bench/merkle.py [--leaves N] [--proofs N]``. Single-threaded; prints the
machine's core count and load, and each rate twice: by wall-clock time and by this process's CPU
time (the per-core figure, less distorted when other work shares the machine). Issue 2 targets:
≥ 500,000 leaves/s and ≥ 20,000 inclusion proofs/s from tiles, on one core.

Figures:

* ``leaf hash + append``: ``leaf_hashes`` of 21-byte entries plus ``CompactRange.extend``
  reporting the level ≥ 8 subtrees (what a tile-writing integrator does).
* ``RightEdge.extend``: the same leaf hashes turned into C2SP tiles and entry bundles in 256-leaf
  batches, by the log's own integrator code (:class:`keyless.log.edge.RightEdge`).
* ``inclusion proofs``: random indices in the tiled tree through the log's
  :class:`keyless.log.nodes.NodeReader`, *hot* (one long-lived reader, as the log engine keeps)
  and *no cache* (a fresh reader per proof, which reads and re-hashes its tiles); consistency
  proofs hot; and the tile access pattern of a 1e9-entry tree.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from hashlib import sha256

from keyless.formats.tiles import parse_tile_path
from keyless.log.edge import RightEdge
from keyless.log.nodes import NodeReader
from keyless.merkle import (
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hashes,
    verify_inclusion,
)


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

    store: dict[str, bytes] = {}
    edge = RightEdge(CompactRange(), [], [])

    def write_tiles() -> None:
        for start in range(0, n, 256):
            tiles, _obsolete = edge.extend(
                hashes[start : start + 256], entries[start : start + 256]
            )
            store.update(tiles)

    _measure("RightEdge.extend (tiles + bundles)", n, "leaves", write_tiles)
    assert edge.root() == root

    reads = [0]

    def read_tile(path: str) -> bytes | None:
        reads[0] += 1
        return store.get(path)

    rng = random.Random(1)
    indices = [rng.randrange(n) for _ in range(p)]
    nodes = NodeReader(read_tile, lambda: n)
    assert CompactRange.from_getter(n, nodes.get_hash).root() == root
    for i in indices:  # warm the reader once, as a long-running log would have
        inclusion_proof(i, n, nodes.get_hash)

    def hot() -> None:
        for i in indices:
            inclusion_proof(i, n, nodes.get_hash)

    def cold() -> None:
        for i in indices:
            inclusion_proof(i, n, NodeReader(read_tile, lambda: n).get_hash)

    def consistency() -> None:
        for i in indices:
            consistency_proof(max(1, i), n, nodes.get_hash)

    _measure("inclusion proofs, hot (one NodeReader)", p, "proofs", hot)
    reads[0] = 0
    _measure("inclusion proofs, cold (fresh NodeReader)", p, "proofs", cold)
    print(f"  cold: {reads[0] / p:.2f} tile reads per proof")
    _measure("consistency proofs, hot (one NodeReader)", p, "proofs", consistency)

    for i in indices[:200]:  # the proofs are right, not just fast
        verify_inclusion(hashes[i], i, n, inclusion_proof(i, n, nodes.get_hash), root)

    big = 10**9
    seen: list[str] = []

    def fake(path: str) -> bytes:
        seen.append(path)
        level, index, width = parse_tile_path(path)
        return sha256(f"{level}/{index}".encode()).digest() * (width or 256)

    worst = 0
    for i in indices[:2000]:
        before = len(seen)
        inclusion_proof(i * (big // n), big, NodeReader(fake, lambda: big).get_hash)
        worst = max(worst, len(seen) - before)
    print(f"1e9-entry tree: {len(seen) / 2000:.2f} tile reads per inclusion proof (max {worst})")


if __name__ == "__main__":
    main()
