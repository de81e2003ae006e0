"""Recovery of the SQLite backend's static files after a crash (architecture.md "Reads are static
files"; contracts.md §5: nothing acknowledged is lost across ``kill -9``).

``DIR/logs/<log>/checkpoint`` is a static copy of the committed head, written just after the
commit. A crash between the two leaves the folder one checkpoint behind the database; the next
start must put the committed one back, or a static reader would miss the last acknowledged
entries until the next write.
"""

from __future__ import annotations

from pathlib import Path

from keyless.formats.note_keys import NoteSigner
from keyless.keys import InMemorySigner, generate_key
from keyless.log import TransparencyLog
from keyless.storage import open_storage

SIGNER = NoteSigner.ed25519("example.test/log", InMemorySigner(generate_key("ed25519")))


async def _run_log(tmp_path: Path, leaves: list[bytes]) -> bytes:
    """Start the engine on the SQLite store under ``tmp_path``, add ``leaves``, stop; return the
    committed checkpoint."""
    storage = await open_storage(f"sqlite:///{tmp_path / 'keyless.db'}", data_dir=tmp_path)
    log = TransparencyLog(storage, name="rekor-v2", origin="example.test/log", signer=SIGNER)
    try:
        await log.start()
        for leaf in leaves:
            await log.add(leaf)
        return await log.checkpoint()
    finally:
        await log.close()
        await storage.close()


async def test_a_checkpoint_file_left_behind_by_a_crash_is_republished_at_start(
    tmp_path: Path,
) -> None:
    static = tmp_path / "logs" / "rekor-v2" / "checkpoint"
    older = await _run_log(tmp_path, [b"first"])
    assert static.read_bytes() == older
    newer = await _run_log(tmp_path, [b"second", b"third"])
    assert static.read_bytes() == newer != older
    static.write_bytes(older)  # as if killed between the commit and the static copy
    assert await _run_log(tmp_path, []) == newer
    assert static.read_bytes() == newer
    static.unlink()  # or before the first copy was ever written
    await _run_log(tmp_path, [])
    assert static.read_bytes() == newer
