"""One storage contract, every backend: memory, SQLite (+ tile files) and PostgreSQL.

``backend_factory`` opens the *same* database again each time it is called, as a restarted process
would (for memory: the same in-process backend object).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from keyless.formats.checkpoint import NoteSigner
from keyless.server.keys import InMemorySigner, generate_key
from keyless.storage import Storage, open_storage
from keyless.storage.memory import MemoryBackend

Opener = Callable[[], Awaitable[Storage]]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def opener(
    backend_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Opener]:
    opened: list[Storage] = []
    url = ""  # what `keyless log fsck` is given (memory has no URL another process could open)
    if backend_kind == "memory":
        memory = MemoryBackend()

        async def open_memory() -> Storage:
            return await open_storage("memory://", backend=memory)

        factory: Opener = open_memory
    elif backend_kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'keyless.db'}"
        sqlite_url = url

        async def open_sqlite() -> Storage:
            return await open_storage(sqlite_url, data_dir=tmp_path)

        factory = open_sqlite
    else:
        cluster: Any = request.getfixturevalue("postgres_cluster")
        pg_url = url = cluster.create_database()

        async def open_pg() -> Storage:
            return await open_storage(pg_url)

        factory = open_pg

    async def tracked() -> Storage:
        storage = await factory()
        opened.append(storage)
        return storage

    tracked.url = url  # type: ignore[attr-defined]
    yield tracked
    for storage in opened:
        await storage.close()


@pytest.fixture
async def storage(opener: Opener) -> Storage:
    return await opener()


@pytest.fixture(scope="session")
def note_signer() -> NoteSigner:
    return NoteSigner.ed25519("example.test/log", InMemorySigner(generate_key("ed25519")))
