"""How one process serves the stack's ASGI app with uvicorn: the one place its settings live.

``keyless serve --workers 1`` runs it in the ``serve`` process itself; with more workers every
worker process runs it over the listening socket its supervisor shares (:mod:`.workers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import uvicorn

from keyless.http.protocol import json_error_http_protocol
from keyless.server.config import Settings

T = TypeVar("T")

#: How many container allocations (net of frees) start a collection of the cyclic garbage
#: collector's youngest generation while serving; CPython's default is 700.
YOUNG_GENERATION_THRESHOLD = 20_000


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a serving process's ``main`` on uvloop, the event loop uvicorn itself would pick (the
    stack calls ``Server.serve()``, which skips uvicorn's own loop setup); asyncio's default loop
    where uvloop is not installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def uvicorn_config(app: Any, settings: Settings) -> uvicorn.Config:
    """uvicorn's settings for the stack (no access log of its own: :mod:`keyless.http.logs`)."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace)),
        server_header=False,
        # JSON 400/408/431 for requests the HTTP parser rejects or that never finish their head
        # (contracts.md §5); no WebSocket endpoint exists.
        http=json_error_http_protocol(),
        ws="none",
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies,
    )


class GracefulServer(uvicorn.Server):
    """A uvicorn server whose SIGTERM/SIGINT end in exit status 0 after the graceful shutdown
    (uvicorn re-raises the signal, which makes every orderly stop look like a crash).

    ``on_started`` runs once the lifespan has started and the socket is being served.
    """

    def __init__(
        self, config: uvicorn.Config, *, on_started: Callable[[], None] | None = None
    ) -> None:
        super().__init__(config)
        self._on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            settle_garbage_collector()
            if self._on_started is not None:
                self._on_started()


def settle_garbage_collector() -> None:
    """Set the cyclic garbage collector up for serving, once the stack is built.

    Everything alive now (modules, the stack, its keys and caches) lives as long as the process,
    so it is moved out of the collector's sight (``gc.freeze``) and the full collections no
    longer walk it. Every request leaves a few reference cycles behind (its task, coroutine and
    context), so the youngest generation is collected every ``YOUNG_GENERATION_THRESHOLD``
    allocations instead of every 700: a collection's cost barely depends on how much garbage it
    finds. Measured with ``bench/stack.py`` (Rekor v2): the collector took about 0.08 ms of CPU
    per entry (full collections of ~75 ms each, on the event loop), about 0.03 ms after this.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
