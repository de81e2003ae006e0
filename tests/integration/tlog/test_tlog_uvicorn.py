"""The transparency log behind real uvicorn on a free 127.0.0.1 port, on SQLite.

Requests are the exact shapes sigstore-python 4.5.1 and sigstore-js 5.0.1 send (interop.md §3,
tests/interop/sign.js, sign-v2.js); every answer is checked by the independent verifier in
tests/unit/tlog/tlog_support.py, and the served tiles must recompute the checkpoint's root.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "tlog"))

from tlog_support import (
    CA,
    EMAIL,
    TREE_ID,
    LogStack,
    Signer,
    build_stack,
    dsse_over_hashedrekord_v2,
    dsse_v1,
    dsse_v2,
    hashedrekord_v1,
    hashedrekord_v2,
    intoto_v1,
    parse_note,
    statement,
    verify_note_ed25519,
    verify_tiles,
    verify_v1_entry,
    verify_v2_entry,
)

pytestmark = pytest.mark.integration


class Served:
    """A :class:`LogStack` served by uvicorn on an ephemeral port."""

    def __init__(self, stack: LogStack, server: uvicorn.Server, task: asyncio.Task[None],
                 port: int) -> None:
        self.stack, self.server, self.task, self.port = stack, server, task, port
        self.url = f"http://127.0.0.1:{port}"
        self.host = f"localhost:{port}"

    async def close(self) -> None:
        self.server.should_exit = True
        await self.task
        await self.stack.close()


async def serve(tmp: Path, ca: CA, keys: tuple[Any, Any] | None = None, url: str | None = None
                ) -> Served:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    stack = await build_stack(url or f"sqlite:///{tmp}/keyless.db", data_dir=tmp,
                              host=f"localhost:{port}", keys=keys, trusted_cas=[ca.cert])
    config = uvicorn.Config(stack.app, log_level="warning", http="httptools", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return Served(stack, server, task, port)


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA.create()


@pytest.fixture(params=["sqlite", "postgresql"])
async def served(
    request: pytest.FixtureRequest, tmp_path: Path, ca: CA
) -> AsyncIterator[Served]:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_cluster").create_database()
    s = await serve(tmp_path, ca, url=url)
    yield s
    await s.close()


async def test_concurrent_clients_of_both_apis_all_verify(served: Served, ca: CA) -> None:
    signers = [Signer.create(ca, kind) for kind in ("p256", "p256", "p384", "ed25519")]
    v2_requests: list[dict[str, Any]] = []
    v1_requests: list[dict[str, Any]] = []
    for i in range(40):
        s = signers[i % 3]  # ECDSA signers for hashedrekord
        v2_requests.append(hashedrekord_v2(s, b"artifact %d" % i))
        v1_requests.append(hashedrekord_v1(signers[0], b"artifact %d" % i))
    for s in signers:
        v2_requests += [dsse_v2(s, statement()), dsse_over_hashedrekord_v2(signers[0], statement())]
        v1_requests += [dsse_v1(s, statement()), intoto_v1(s, statement())]
    v2_key = served.stack.v2_key.public_key()
    v1_key = served.stack.v1_key.public_key()
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
        v2_answers, v1_answers = await asyncio.gather(
            asyncio.gather(*(client.post("/rekor/api/v2/log/entries", json=r)
                             for r in v2_requests)),
            asyncio.gather(*(client.post("/api/v1/log/entries", json=r) for r in v1_requests)),
        )
        assert all(r.status_code == 201 for r in v2_answers), [r.text for r in v2_answers]
        assert all(r.status_code == 201 for r in v1_answers), [r.text for r in v1_answers]
        for r in v2_answers:
            verify_v2_entry(r.json(), origin=f"{served.host}/rekor", public_key=v2_key)
        for r in v1_answers:
            verify_v1_entry(r.json(), name=served.host, tree_id=TREE_ID, public_key=v1_key)
        v2_indexes = sorted(int(r.json()["logIndex"]) for r in v2_answers)
        assert v2_indexes == list(range(1, len(v2_requests) + 1))

        # The tiles served over HTTP recompute the checkpoint's root; bundles hold the bodies.
        note = parse_note((await client.get("/rekor/checkpoint")).content)
        verify_note_ed25519(note, f"{served.host}/rekor", v2_key)
        cache: dict[str, bytes] = {}
        for path in (f"tile/0/000.p/{note.size}", f"tile/entries/000.p/{note.size}"):
            r = await client.get(f"/rekor/{path}")
            assert r.status_code == 200
            cache[path] = r.content
        entries = verify_tiles(cache.__getitem__, note.size, note.root)
        bodies = {base64.b64decode(r.json()["canonicalizedBody"]) for r in v2_answers}
        assert bodies == set(entries[1:])

        # Resubmitting concurrently is idempotent on v2 and 409 on v1.
        again = await asyncio.gather(*(client.post("/rekor/api/v2/log/entries", json=r)
                                       for r in v2_requests[:5]))
        assert [a.json()["logIndex"] for a in again] == [
            r.json()["logIndex"] for r in v2_answers[:5]]
        dup = await client.post("/api/v1/log/entries", json=v1_requests[0])
        assert dup.status_code == 409 and dup.headers["location"].endswith(
            next(iter(v1_answers[0].json())))

        await served.stack.v2.indexer.flush()
        found = await client.get("/rekor/api/v2/search", params={"email": EMAIL})
        assert len(found.json()["entries"]) == len(v2_requests)


async def test_restart_keeps_entries_and_catches_up_the_index(tmp_path: Path, ca: CA) -> None:
    signer = Signer.create(ca)
    first = await serve(tmp_path, ca)
    keys = (first.stack.v1_key, first.stack.v2_key)
    indexer = first.stack.v2.indexer
    assert indexer is not None
    await indexer.close()  # stop background indexing: entries below stay queued, unwritten
    async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
        answers = [await client.post("/rekor/api/v2/log/entries",
                                     json=hashedrekord_v2(signer, b"%d" % i)) for i in range(5)]
    assert all(a.status_code == 201 for a in answers)
    # Simulate a crash after the entries were acknowledged but before they were indexed.
    assert await indexer.lookup([f"email:{EMAIL}"]) == []
    indexer._pending.clear()
    await first.close()

    second = await serve(tmp_path, ca, keys=keys)
    assert second.stack.v2.indexer is not None
    await asyncio.wait_for(second.stack.v2.indexer.caught_up(), timeout=30)
    try:
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as client:
            for a in answers:
                index = a.json()["logIndex"]
                r = await client.get(f"/rekor/tile/entries/000.p/{int(index) + 1}")
                assert r.status_code == 200
            found = await client.get("/rekor/api/v2/search", params={"email": EMAIL})
            assert [e["logIndex"] for e in found.json()["entries"]] == [
                a.json()["logIndex"] for a in answers]
            more = await client.post("/rekor/api/v2/log/entries",
                                     json=hashedrekord_v2(signer, b"after restart"))
            assert more.status_code == 201 and more.json()["logIndex"] == "6"
    finally:
        await second.close()
