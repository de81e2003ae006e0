"""kill -9 under load, many times: no acknowledged entry lost, no fork (targets.md G9, issue 3).

Two real writer processes (crash_writer.py) share the database, each appending with 48 concurrent
writers, and each is killed with SIGKILL at its own random moment; 20 cycles, every restart running
recovery on start. Afterwards every acknowledged entry must be in the log at its acknowledged
index with a valid inclusion proof in the final tree; every checkpoint ever returned must be
consistent with the final one, and no two checkpoints of the same size may differ; re-submitted
entries must come back as duplicates with their original index (the dedup index is durable); fsck
must find nothing wrong.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from keyless import merkle
from keyless.formats.checkpoint import Checkpoint
from keyless.formats.note import SignedNote
from keyless.formats.note_keys import NoteSigner
from keyless.keys import InMemorySigner, generate_key
from keyless.log import TransparencyLog
from keyless.log.fsck import fsck_log
from keyless.storage import open_storage
from keyless.storage.keyfiles import write_private_key

WRITER = Path(__file__).with_name("crash_writer.py")
CYCLES = 20
PROCESSES = 2  # writers sharing the database in each cycle (one sequences at a time)


def run_cycle(
    argvs: list[list[str]],
    rng: random.Random,
    acks: dict[int, bytes],
    checkpoints: list[tuple[int, bytes, bytes]],
    recovery: list[float],
) -> tuple[int, list[tuple[int, bytes, bool]]]:
    """Run writer processes side by side; SIGKILL each at its own random moment under load."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for argv in argvs
    ]
    buffers = {proc.pid: b"" for proc in procs}
    ready_at: dict[int, float] = {}
    kill_after = {proc.pid: rng.uniform(0.05, 0.6) for proc in procs}
    live = list(procs)
    deadline = time.monotonic() + 60
    while live:
        now = time.monotonic()
        for proc in list(live):
            if proc.pid in ready_at and now - ready_at[proc.pid] >= kill_after[proc.pid]:
                proc.send_signal(signal.SIGKILL)
                live.remove(proc)
            elif now > deadline or proc.poll() is not None:
                for other in procs:
                    other.kill()
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise AssertionError(f"writer died or hung before being killed: {err[-2000:]}")
        streams = [proc.stdout for proc in live if proc.stdout is not None]
        readable, _, _ = select.select(streams, [], [], 0.01) if streams else ([], [], [])
        for proc in live:
            if proc.stdout in readable:
                buffers[proc.pid] += os.read(proc.stdout.fileno(), 1 << 20)
                if proc.pid not in ready_at and b"ready " in buffers[proc.pid]:
                    ready_at[proc.pid] = time.monotonic()
    count = 0
    dups: list[tuple[int, bytes, bool]] = []
    for proc in procs:
        rest, _err = proc.communicate(timeout=30)
        for line in (buffers[proc.pid] + rest).decode().splitlines():
            parts = line.split()
            if parts[0] == "ack":
                index, leaf = int(parts[1]), bytes.fromhex(parts[2])
                assert index not in acks, f"index {index} acknowledged twice"
                acks[index] = leaf
                checkpoints.append(
                    (int(parts[3]), bytes.fromhex(parts[4]), bytes.fromhex(parts[5]))
                )
                count += 1
            elif parts[0] == "dup":
                dups.append((int(parts[1]), bytes.fromhex(parts[2]), parts[3] == "1"))
            elif parts[0] == "ready":
                recovery.append(float(parts[1]))
    return count, dups


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_kill_9_under_load_loses_nothing_and_never_forks(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "postgres":
        cluster: Any = request.getfixturevalue("postgres_cluster")
        url = cluster.create_database()
    else:
        url = f"sqlite:///{tmp_path / 'keyless.db'}"
    key = generate_key("ed25519")
    key_file = tmp_path / "log.key"
    write_private_key(key_file, key)
    signer = NoteSigner.ed25519("crash.test/log", InMemorySigner(key))
    # the kill moments are random: the seed is printed (shown when the test fails) and
    # KEYLESS_CRASH_SEED=N replays a run
    seed = int(os.environ.get("KEYLESS_CRASH_SEED") or int.from_bytes(os.urandom(4), "big"))
    print(f"crash test seed: KEYLESS_CRASH_SEED={seed}")
    rng = random.Random(seed)
    acks: dict[int, bytes] = {}
    checkpoints: list[tuple[int, bytes, bytes]] = []
    recovery: list[float] = []  # seconds each restart spent in log.start()
    resubmit = tmp_path / "resubmit"
    total = 0
    for cycle in range(CYCLES):
        sample = rng.sample(sorted(acks.items()), min(5, len(acks)))
        resubmit.write_text("\n".join(leaf.hex() for _i, leaf in sample))
        argvs = [
            [
                sys.executable,
                str(WRITER),
                url,
                str(tmp_path),
                str(key_file),
                f"{cycle}.{p}",
                str(resubmit),
            ]
            for p in range(PROCESSES)
        ]
        count, dups = run_cycle(argvs, rng, acks, checkpoints, recovery)
        total += count
        expected = {leaf: index for index, leaf in sample}
        for index, leaf, duplicate in dups:
            assert duplicate and expected[leaf] == index, "a re-submitted entry got a new index"
    assert total > 0 and len(acks) == total
    assert len(recovery) == CYCLES * PROCESSES
    # targets.md G9 wants recovery within 5 s on an idle machine; on a loaded CI machine this
    # bound only catches a recovery that does not finish (e.g. replaying the whole log)
    print(f"slowest recovery on start: {max(recovery):.2f} s")
    assert max(recovery) <= 60.0, f"recovery on start took {max(recovery):.1f} s"

    storage = await open_storage(url, data_dir=tmp_path)
    log = TransparencyLog(storage, name="crash", origin="crash.test/log", signer=signer)
    await log.start()  # recovery after the last kill
    size, root = await log.tree()
    assert size > max(acks)
    for index, leaf in acks.items():
        assert (await log.entry(index)).leaf == leaf, f"acknowledged entry {index} lost"
    leaves = [merkle.leaf_hash(e.leaf) for e in await log.entries(0, size)]
    tree = merkle.MemoryTree(leaves)
    assert tree.root() == root
    for index in rng.sample(sorted(acks), min(300, len(acks))):
        merkle.verify_inclusion(
            leaves[index], index, size, await log.inclusion_proof(index, size), root
        )
    by_size: dict[int, tuple[bytes, bytes]] = {}
    verifier = signer.verifier()
    for cp_size, cp_root, note in checkpoints:
        seen = by_size.setdefault(cp_size, (cp_root, note))
        assert seen == (cp_root, note), f"fork: two checkpoints of size {cp_size}"
    for cp_size, (cp_root, note) in by_size.items():
        verifier.verify(SignedNote.parse(note))
        parsed = Checkpoint.from_text(SignedNote.parse(note).text)
        assert (parsed.size, parsed.root_hash) == (cp_size, cp_root)
        assert tree.root(cp_size) == cp_root  # consistent with the final tree
        merkle.verify_consistency(
            cp_size, size, cp_root, root, await log.consistency_proof(cp_size, size)
        )
    report = await storage.run(fsck_log, storage.log_store, "crash")
    assert report.ok, report.problems
    await log.close()
    await storage.close()
    print(
        f"{kind}: {CYCLES} cycles x {PROCESSES} killed writers, {total} acknowledged entries, "
        f"final size {size}, {len(by_size)} distinct checkpoints, "
        f"recovery on start max {max(recovery) * 1000:.0f} ms"
    )
