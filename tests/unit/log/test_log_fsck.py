"""``keyless log fsck`` on a SQLite data directory: clean, then with damaged tiles and bundles."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from keyless._cli.main import main
from keyless.formats.note_keys import NoteSigner
from keyless.formats.tiles import entries_path, tile_path
from keyless.keys import InMemorySigner, generate_key
from keyless.log import TransparencyLog
from keyless.log.fsck import fsck_log
from keyless.storage import open_backend, open_storage

SIGNER = NoteSigner.ed25519("example.test/log", InMemorySigner(generate_key("ed25519")))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    async def fill() -> None:
        storage = await open_storage(f"sqlite:///{tmp_path / 'keyless.db'}", data_dir=tmp_path)
        log = TransparencyLog(
            storage, name="rekor-v2", origin="example.test/log", signer=SIGNER, seed=[b"s"]
        )
        await log.start()
        for chunk in range(6):
            await asyncio.gather(*(log.add(b"e%d-%d" % (chunk, i)) for i in range(100)))
        await log.close()
        await storage.close()

    asyncio.run(fill())
    return tmp_path


def test_clean_log_passes(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "fsck", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "rekor-v2: size 601" in out and "ok" in out
    backend = open_backend(f"sqlite:///{data_dir / 'keyless.db'}", data_dir=data_dir)
    report = fsck_log(backend.log_store, "rekor-v2")
    backend.close()
    assert report.ok and report.size == 601
    # 2 full hash tiles + 2 full bundles + partial level-0 tile + partial bundle + level-1 partial
    assert report.tiles_checked == 7


def test_damage_is_reported(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiles = data_dir / "logs" / "rekor-v2"
    full = tiles / tile_path(0, 1)
    data = bytearray(full.read_bytes())
    data[40] ^= 1
    full.write_bytes(bytes(data))
    (tiles / entries_path(2, 601 - 512)).unlink()
    assert main(["log", "fsck", str(data_dir / "keyless.db")]) == 1
    out = capsys.readouterr().out
    assert f"{tile_path(0, 1)}: hashes differ" in out
    assert f"{entries_path(2, 89)}: missing" in out


def test_missing_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "fsck", str(tmp_path / "nothing")]) == 1
    assert "no such directory" in capsys.readouterr().err


def test_restart_repairs_lost_right_edge_files(data_dir: Path) -> None:
    """Recovery on start rebuilds the partial tiles and bundle from the entry table."""
    tiles = data_dir / "logs" / "rekor-v2"
    for path in (tile_path(0, 2, 89), tile_path(1, 0, 2), entries_path(2, 89)):
        (tiles / path).unlink()

    async def restart() -> None:
        storage = await open_storage(f"sqlite:///{data_dir / 'keyless.db'}", data_dir=data_dir)
        log = TransparencyLog(storage, name="rekor-v2", origin="example.test/log", signer=SIGNER)
        await log.start()
        result = await log.add(b"after the repair")
        assert result.index == 601
        await log.close()
        await storage.close()

    asyncio.run(restart())
    backend = open_backend(f"sqlite:///{data_dir / 'keyless.db'}", data_dir=data_dir)
    report = fsck_log(backend.log_store, "rekor-v2")
    backend.close()
    assert report.ok, report.problems
    assert (tiles / tile_path(0, 2, 89)).exists()  # rewritten, although size 602 superseded it
