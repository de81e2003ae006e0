"""Whole-file writes (keyless.localfiles): never a partial file, never a stray temporary."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from keyless.localfiles import write_file_atomically


def test_a_file_is_replaced_whole_with_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "secret.pem"
    write_file_atomically(target, b"first", mode=0o600, fsync=True)
    assert target.read_bytes() == b"first"
    assert target.stat().st_mode & 0o777 == 0o600
    write_file_atomically(target, b"second", mode=0o600)
    assert target.read_bytes() == b"second"
    assert os.listdir(tmp_path) == ["secret.pem"]


def test_writers_at_once_leave_one_whole_copy(tmp_path: Path) -> None:
    """Processes writing the same file at start (--workers N): a reader sees one whole copy."""
    target = tmp_path / "client-trust-config.json"
    copies = [bytes([65 + n]) * 200_000 for n in range(8)]
    seen: list[bytes] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            if target.exists():
                seen.append(target.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write_file_atomically, args=(target, copy))
               for copy in copies for _ in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    done.set()
    reader.join()
    assert target.read_bytes() in copies
    assert all(data in copies for data in seen)
    assert os.listdir(tmp_path) == [target.name]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "kept"
    write_file_atomically(target, b"old")
    with pytest.raises(TypeError):
        write_file_atomically(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["kept"]


def test_the_git_signers_cache_does_not_load_the_storage_layer() -> None:
    """keyless-git starts per commit: writing its cache file must not import asyncio."""
    code = ("import sys, keyless.git.cache; "
            "print(sorted(m for m in ('asyncio', 'keyless.storage') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
