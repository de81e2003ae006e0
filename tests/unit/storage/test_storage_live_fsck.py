"""``keyless log fsck`` beside a live writer (targets.md G9; contracts.md §2 "never corrupt").

An operator may check a log while ``keyless serve`` appends to it. The check reads the head, then
every entry and tile; without one read snapshot it saw the entries of batches committed meanwhile
("entries beyond the checkpoint's size") and, on SQLite, partial tiles that a later batch had
completed and removed. Both were false alarms: here a writer moves the log on between the
snapshot and the check, and the check must still find the snapshot's log clean.
"""

from __future__ import annotations

from pathlib import Path

from keyless._cli.log import _LiveReads
from keyless.formats.note_keys import NoteSigner
from keyless.keys import InMemorySigner, generate_key
from keyless.log import TransparencyLog
from keyless.log.fsck import fsck_log
from keyless.storage import open_backend, open_storage

SIGNER = NoteSigner.ed25519("example.test/log", InMemorySigner(generate_key("ed25519")))


async def _append(tmp_path: Path, count: int, start: int) -> int:
    """Append ``count`` entries through the real engine; return the new size."""
    storage = await open_storage(f"sqlite:///{tmp_path / 'keyless.db'}", data_dir=tmp_path)
    log = TransparencyLog(storage, name="rekor-v2", origin="example.test/log", signer=SIGNER)
    try:
        await log.start()
        for n in range(start, start + count):
            await log.add(b"entry %d" % n)
        return (await log.head()).size
    finally:
        await log.close()
        await storage.close()


async def test_fsck_in_a_snapshot_ignores_what_a_live_writer_commits_meanwhile(
    tmp_path: Path,
) -> None:
    assert await _append(tmp_path, 300, 0) == 300  # tile 1 is partial: tile/0/001.p/44
    checker = open_backend(f"sqlite:///{tmp_path / 'keyless.db'}", data_dir=tmp_path)
    try:
        store = _LiveReads(checker.log_store)
        with store.snapshot("rekor-v2"):
            assert checker.log_store.head("rekor-v2").size == 300  # type: ignore[union-attr]
            # the live writer completes tile 1 (its .p folder is removed) and goes on
            assert await _append(tmp_path, 300, 300) == 600
            assert not (tmp_path / "logs" / "rekor-v2" / "tile" / "0" / "001.p").exists()
            report = fsck_log(store, "rekor-v2")
            bare = fsck_log(checker.log_store, "rekor-v2")
        assert report.ok and report.size == 300, report.problems
        assert any("001.p/44: missing" in p for p in bare.problems), bare.problems
        after = fsck_log(store, "rekor-v2")  # outside the snapshot: the new head
        assert after.ok and after.size == 600, after.problems
    finally:
        checker.close()
