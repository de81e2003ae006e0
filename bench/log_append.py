"""Benchmark of the log engine alone (no HTTP, no signature checks): issue 3 targets.

For each backend (SQLite + tile files, PostgreSQL) it prints:

* throughput: ``--entries`` appends from ``--writers`` concurrent writers → durable entries/s
  (each counted only once ``add`` returned: sequenced, integrated, checkpoint signed, proof built);
* latency idle: one writer, one entry at a time → p50/p99 add→proof;
* latency under load: an open-loop generator at ``--rate`` entries/s for ``--seconds`` → p50/p99;
* no slowdown with size: the same throughput run on a log pre-seeded *synthetically* at
  ``--large-size`` leaves (default 10 M): its right-edge tiles, partial entry bundle and signed
  checkpoint are fabricated from random hashes, so the tree state is that of a 10 M log, and the
  entry table gets ``--dedup-rows`` (default 1 M) rows with random dedup keys so lookups run
  against a deep index. Honest limits: fsck would reject such a log, and the index is 1 M rows
  deep rather than 10 M (its B-tree lookups grow with log n: one more level at most).

PostgreSQL: ``--postgres-url`` or a throwaway cluster (tests/pgcluster.py, needs initdb).
Targets (issue 3): ≥ 20,000/s SQLite, ≥ 10,000/s PostgreSQL; p50 ≤ 50 ms idle; p99 ≤ 500 ms at
2,000/s; the same rates at 10 M as at 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from keyless.formats.note_keys import NoteSigner
from keyless.formats.tiles import (
    TILE_WIDTH,
    encode_entry_bundle,
    entries_path,
    tile_levels,
    tile_path,
)
from keyless.keys import InMemorySigner, generate_key
from keyless.log import TransparencyLog
from keyless.log.nodes import NodeReader
from keyless.log.sequencer import Sequencer
from keyless.merkle import CompactRange
from keyless.storage import Storage, open_storage
from keyless.storage.model import Batch, LogHead, NewEntry

SIGNER = NoteSigner.ed25519("bench.test/log", InMemorySigner(generate_key("ed25519")))
ENTRY_SIZE = 300


def entry(tag: str, i: int) -> bytes:
    body = f"{tag}:{i}:".encode()
    return body + b"x" * (ENTRY_SIZE - len(body))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def seed_synthetic(storage: Storage, name: str, size: int) -> None:
    """Fabricate the right edge of a ``size``-leaf log (tiles + signed checkpoint), no entries."""
    tiles: dict[str, bytes] = {}
    for level in range(tile_levels(size)):
        width = (size >> (8 * level)) % TILE_WIDTH
        if width:
            tiles[tile_path(level, size >> (8 * (level + 1)), width)] = secrets.token_bytes(
                32 * width
            )
    if size % TILE_WIDTH:
        tiles[entries_path(size // TILE_WIDTH, size % TILE_WIDTH)] = encode_entry_bundle(
            [entry("synthetic", i) for i in range(size % TILE_WIDTH)]
        )
    reader = NodeReader(tiles.get, lambda: size)
    root = CompactRange.from_getter(size, reader.get_hash).root()
    sequencer = Sequencer(origin="bench.test/log", signer=SIGNER, clock=time.time, nodes=reader)
    head = LogHead(size, root, sequencer.sign(size, root))
    with storage.log_store.sequencing(name) as session:
        session.commit(Batch(old_size=0, head=head, entries=(), tiles=tiles))


def prefill_dedup(storage: Storage, name: str, rows: int) -> None:
    """Put ``rows`` entries with random dedup keys under the synthetic log's head (indexes 0…).

    So the dedup index the benchmark appends against is ``rows`` deep, not empty. Written through
    the ordinary commit with the head unchanged (the SQL backends accept entries below the head).
    """
    with storage.log_store.sequencing(name) as session:
        head = session.head()
    assert head is not None and head.size >= rows
    chunk = 50_000
    for start in range(0, rows, chunk):
        entries = []
        for i in range(start, min(rows, start + chunk)):
            key = secrets.token_bytes(32)
            entries.append(NewEntry(i, b"", None, key, key, 0))
        with storage.log_store.sequencing(name) as session:
            session.commit(Batch(old_size=head.size, head=head, entries=entries, tiles={}))


async def throughput(storage: Storage, name: str, entries: int, writers: int) -> float:
    log = TransparencyLog(storage, name=name, origin="bench.test/log", signer=SIGNER, seed=[b"s"])
    await log.start()
    counter = iter(range(entries))

    async def writer() -> None:
        for i in counter:
            await log.add(entry(name, i))

    start = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - start
    await log.close()
    return entries / elapsed


async def latency_idle(storage: Storage, name: str, samples: int) -> list[float]:
    log = TransparencyLog(storage, name=name, origin="bench.test/log", signer=SIGNER, seed=[b"s"])
    await log.start()
    latencies = []
    for i in range(samples):
        start = time.perf_counter()
        await log.add(entry(name, i))
        latencies.append(time.perf_counter() - start)
        await asyncio.sleep(0.005)
    await log.close()
    return latencies


async def latency_at_rate(storage: Storage, name: str, rate: float, seconds: float) -> list[float]:
    log = TransparencyLog(storage, name=name, origin="bench.test/log", signer=SIGNER, seed=[b"s"])
    await log.start()
    latencies: list[float] = []

    async def one(i: int) -> None:
        start = time.perf_counter()
        await log.add(entry(name, i))
        latencies.append(time.perf_counter() - start)

    tasks = []
    begin = time.perf_counter()
    sent = 0
    while (now := time.perf_counter()) - begin < seconds:
        due = int((now - begin) * rate)
        while sent < due:
            tasks.append(asyncio.create_task(one(sent)))
            sent += 1
        await asyncio.sleep(0.001)
    await asyncio.gather(*tasks)
    await log.close()
    return latencies


async def run_backend(label: str, url: str, data_dir: str, args: argparse.Namespace) -> None:
    storage = await open_storage(url, data_dir=data_dir)
    try:
        rate0 = await throughput(storage, "tput", args.entries, args.writers)
        print(
            f"{label}: throughput at size 0: {rate0:,.0f} entries/s "
            f"({args.entries:,} entries, {args.writers} concurrent writers)",
            flush=True,
        )
        await storage.run_writer("large", seed_synthetic, storage, "large", args.large_size)
        started = time.perf_counter()
        await storage.run_writer("large", prefill_dedup, storage, "large", args.dedup_rows)
        prefill = time.perf_counter() - started
        rate_large = await throughput(storage, "large", args.entries, args.writers)
        print(
            f"{label}: throughput at size {args.large_size:,} (synthetic right edge, "
            f"dedup index pre-filled with {args.dedup_rows:,} rows in {prefill:.0f} s): "
            f"{rate_large:,.0f} entries/s",
            flush=True,
        )
        idle = await latency_idle(storage, "idle", args.idle_samples)
        print(
            f"{label}: latency idle add→proof: p50 {statistics.median(idle) * 1000:.1f} ms, "
            f"p99 {percentile(idle, 99) * 1000:.1f} ms ({len(idle)} sequential adds)",
            flush=True,
        )
        loaded = await latency_at_rate(storage, "loaded", args.rate, args.seconds)
        print(
            f"{label}: latency at {args.rate:,.0f} entries/s: "
            f"p50 {statistics.median(loaded) * 1000:.1f} ms, "
            f"p99 {percentile(loaded, 99) * 1000:.1f} ms "
            f"({len(loaded):,} adds over {args.seconds:.0f} s)",
            flush=True,
        )
    finally:
        await storage.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--writers", type=int, default=2000)
    parser.add_argument("--large-size", type=int, default=10_000_000)
    parser.add_argument("--dedup-rows", type=int, default=1_000_000)
    parser.add_argument("--idle-samples", type=int, default=200)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--postgres-url")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {sys.platform}")
    backends = args.backends.split(",")
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory(prefix="keyless-bench-") as tmp:
            await run_backend("sqlite", f"sqlite:///{tmp}/keyless.db", tmp, args)
    if "postgres" in backends:
        cluster = None
        url = args.postgres_url
        if url is None:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
            from pgcluster import PgCluster

            cluster = PgCluster()
            url = cluster.create_database()
        try:
            await run_backend("postgres", url, tempfile.gettempdir(), args)
        finally:
            if cluster is not None:
                cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
