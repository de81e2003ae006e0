"""The writer process killed by test_log_crash.py: appends entries as fast as it can.

Usage: ``crash_writer.py URL DATA_DIR KEY_PEM CYCLE RESUBMIT_FILE``. It prints
``ready <seconds log.start() took>`` once the log has started (recovery done), then one line per
acknowledged entry::

    ack <index> <leaf hex> <tree_size> <root hex> <checkpoint hex>

and ``dup <index> <leaf hex>`` for each previously acknowledged entry it re-submits first. Lines
are written only after ``add`` returned, so every line the parent reads is an acknowledgement.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from keyless.formats.note_keys import NoteSigner
from keyless.keys import InMemorySigner
from keyless.log import TransparencyLog
from keyless.storage import open_storage
from keyless.storage.keyfiles import load_private_key

WRITERS = 48


def emit(line: str) -> None:
    os.write(1, (line + "\n").encode())


async def main() -> None:
    url, data_dir, key_pem, cycle, resubmit = sys.argv[1:6]
    signer = NoteSigner.ed25519("crash.test/log", InMemorySigner(load_private_key(Path(key_pem))))
    storage = await open_storage(url, data_dir=data_dir)
    log = TransparencyLog(
        storage, name="crash", origin="crash.test/log", signer=signer, seed=[b"crash seed"]
    )
    started = time.perf_counter()
    await log.start()
    emit(f"ready {time.perf_counter() - started:.3f}")
    for line in Path(resubmit).read_text().split():
        leaf = bytes.fromhex(line)
        result = await log.add(leaf)
        emit(f"dup {result.index} {leaf.hex()} {int(result.duplicate)}")

    async def writer(w: int) -> None:
        n = 0
        while True:
            leaf = f"cycle {cycle} writer {w} entry {n}".encode()
            n += 1
            r = await log.add(leaf)
            emit(
                f"ack {r.index} {leaf.hex()} {r.tree_size} {r.root_hash.hex()} {r.checkpoint.hex()}"
            )

    await asyncio.gather(*(writer(w) for w in range(WRITERS)))


if __name__ == "__main__":
    asyncio.run(main())
