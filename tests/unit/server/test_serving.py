"""A serving process sets the garbage collector up once its stack is built (server.serving)."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from keyless.server.serving import YOUNG_GENERATION_THRESHOLD, GracefulServer


@pytest.fixture
def collector() -> Iterator[None]:
    """The test process's collector settings, put back afterwards."""
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


async def test_a_started_server_freezes_what_lives_and_collects_young_garbage_less_often(
    collector: None,
) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    seen: list[tuple[int, tuple[int, int, int]]] = []
    started = asyncio.Event()

    def on_started() -> None:
        seen.append((gc.get_freeze_count(), gc.get_threshold()))
        started.set()

    config = uvicorn.Config(_app, log_config=None, lifespan="on")
    server = GracefulServer(config, on_started=on_started)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        await asyncio.wait_for(started.wait(), 60)
        server.should_exit = True
        await asyncio.wait_for(serving, 60)
    [(frozen, threshold)] = seen
    assert frozen > 1000  # the modules and objects of this process
    assert threshold == (YOUNG_GENERATION_THRESHOLD, 10, 10)


async def test_a_server_that_did_not_start_leaves_the_collector_alone(collector: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = uvicorn.Config(_app, host="127.0.0.1", port=port, log_config=None,
                                lifespan="on")
        server = GracefulServer(config)
        with pytest.raises(SystemExit):
            await server.serve()
    assert not server.started
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == (700, 10, 10)
