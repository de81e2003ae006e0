"""The memory backend's fault injection (used by the engine's failure tests)."""

from __future__ import annotations

import pytest

from keyless.errors import Conflict, StorageError
from keyless.storage.memory import MemoryBackend


def test_faults_fire_the_requested_number_of_times() -> None:
    backend = MemoryBackend()
    backend.faults.fail("kv", times=2)
    for _ in range(2):
        with pytest.raises(StorageError, match="injected"):
            backend.kv.get("ns", "k")
    assert backend.kv.get("ns", "k") is None
    assert backend.faults.hits == {"kv": 2}


def test_custom_errors_and_clear() -> None:
    backend = MemoryBackend()
    backend.faults.fail("search", error=lambda: Conflict("custom"))
    with pytest.raises(Conflict, match="custom"):
        backend.search_index.lookup("log", "k")
    backend.faults.fail("search", times=5)
    backend.faults.clear()
    assert backend.search_index.lookup("log", "k") == []
