"""Bounded admission: a process takes a bounded amount of work, and says so when it is full.

Every request a ``keyless serve`` process is answering holds memory (its body, its parsed form,
a task) and, for a write, a place in a worker-thread queue and in a log's sequencing queue. None
of those queues may grow without bound under overload (contracts.md §5: overload is answered 503
with ``Retry-After``, never a hang). :class:`Admission` is the one place that bounds
them: a request is admitted only while the process has fewer than ``max_requests`` writes (or,
counted apart, reads) in flight *and* their declared bodies total at most ``max_body_bytes``;
otherwise it is answered at once with 503, ``Retry-After`` and the usual ``{"code", "message"}``
body (:mod:`keyless.http.errors`). Everything behind it — the default thread pool of
``asyncio.to_thread``, the storage readers, a log's queue of entries waiting to be sequenced — then
holds at most ``2 x max_requests`` items, whatever the number of clients or connections.

A body of unknown length (chunked, no ``Content-Length``) is charged as the largest body any
endpoint accepts (:data:`keyless.http.requests.DEFAULT_MAX_BODY`): the body readers refuse
anything larger, so that is an upper bound. ``/healthz`` and ``/metrics`` are never refused, so
that probes and scrapes still see an overloaded process.

A refused request's body is read and dropped (up to that maximum, for at most
:data:`DRAIN_SECONDS`) before the answer: closing a connection with unread bytes makes the kernel
reset it, and a reset can destroy the 503 before the client reads it. Draining keeps nothing but
the chunk uvicorn has buffered (a few hundred KiB at most per connection, as for any upload); a
client that sent ``Expect: 100-continue`` is answered without being asked for its body.

The bounds are per process: with several processes behind one port each admits its own share.
Per-client budgets (429, :mod:`keyless.http.budget`) keep one client from taking the whole share.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection

from starlette.types import Receive, Scope, Send

from keyless.errors import Pushback
from keyless.http.errors import error_response
from keyless.http.requests import DEFAULT_MAX_BODY

#: Writes (and, apart, reads) in flight per process: four times the 256 writers of the throughput
#: benchmark, so that batching never starves; 1,024 small writes hold about 10-20 MB.
DEFAULT_MAX_REQUESTS = 1024
#: Declared request-body bytes in flight per process: 8 bodies of the largest size (4 MiB), or
#: over ten thousand ordinary ones (a Rekor entry is 1-3 KiB). A body being parsed and checked
#: holds about 3.5 times its size, so this bounds that memory to about 120 MB.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
#: Seconds a refused client is asked to wait.
RETRY_AFTER = 1
#: Longest a refused request's body is read (and dropped) before the 503 is sent.
DRAIN_SECONDS = 5.0
#: Methods counted as reads (every other method is a write).
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Paths answered whatever the load (health probes and metric scrapes are cheap and must work).
EXEMPT_PATHS = frozenset({"/healthz", "/metrics"})


def _declared_body(scope: Scope) -> int:
    """The body bytes a request may make the process hold: its ``Content-Length``, at most
    :data:`DEFAULT_MAX_BODY` (no body reader takes more: a larger one is answered 413), and
    that maximum for a body of unknown length (``Transfer-Encoding``); else 0."""
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not value.isdigit():
                return 0  # refused by the body reader (400) before anything is read
            return DEFAULT_MAX_BODY if len(value) > 9 else min(int(value), DEFAULT_MAX_BODY)
        if name == b"transfer-encoding":
            chunked = True
    return DEFAULT_MAX_BODY if chunked else 0


#: What :meth:`Admission.admit` returns for a request it does not count (an exempt path).
UNCOUNTED = (False, -1)


class Admission:
    """The bounds of a process: at most ``max_requests`` writes, ``max_requests`` reads
    (``GET``, ``HEAD``, ``OPTIONS``) and ``max_body_bytes`` of declared request bodies admitted at
    a time; ``on_refused(path)`` is told of every refusal (the metric). A bound of 0 switches it
    off. The stack's front layer (:mod:`keyless.http.front`) applies it to every request.

    Reads and writes are counted apart so that writes held up (a log waiting for its storage or
    its witnesses) never lock out the reads monitors and verifiers depend on, nor the reverse.
    """

    def __init__(
        self,
        *,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        on_refused: Callable[[str], None] | None = None,
        exempt: Collection[str] = EXEMPT_PATHS,
    ) -> None:
        if max_requests < 0 or max_body_bytes < 0:
            raise ValueError("admission bounds cannot be negative")
        self.max_requests = max_requests or None
        self.max_body_bytes = max_body_bytes or None
        self.on_refused = on_refused
        self.exempt = frozenset(exempt)
        #: requests admitted and not yet answered (reads, writes), and their declared body bytes
        self.reads = 0
        self.writes = 0
        self.body_bytes = 0

    async def admit(self, scope: Scope, receive: Receive, send: Send) -> tuple[bool, int] | None:
        """Count an HTTP request in and return what :meth:`release` takes when it is answered
        (whether it is a read, its declared body bytes; :data:`UNCOUNTED` for an exempt path),
        or answer it 503 + ``Retry-After`` at once and return None."""
        if scope["path"] in self.exempt:
            return UNCOUNTED
        size = _declared_body(scope)
        read = scope["method"] in READ_METHODS
        full = self._full(read, size)
        if full:
            await self._refuse(full, scope, receive, send)
            return None
        if read:
            self.reads += 1
        else:
            self.writes += 1
        self.body_bytes += size
        return read, size

    def release(self, held: tuple[bool, int]) -> None:
        """Count out a request :meth:`admit` admitted."""
        read, size = held
        if size < 0:
            return
        if read:
            self.reads -= 1
        else:
            self.writes -= 1
        self.body_bytes -= size

    def _full(self, read: bool, size: int) -> str:
        """Why a read or write declaring ``size`` body bytes cannot be admitted now ("" if it
        can)."""
        bound = self.max_requests
        if bound is not None and (self.reads if read else self.writes) >= bound:
            return f"{bound} {'reads' if read else 'writes'}"
        limit = self.max_body_bytes
        # a body larger than the whole bound is admitted when it is alone
        if limit is not None and self.body_bytes + size > limit and self.body_bytes > 0:
            return f"{limit} bytes of request bodies"
        return ""

    async def _refuse(self, full: str, scope: Scope, receive: Receive, send: Send) -> None:
        if self.on_refused is not None:
            self.on_refused(scope["path"])
        busy = Pushback(
            f"the server is busy: it is already handling its maximum of {full}; "
            f"retry in {RETRY_AFTER} s",
            retry_after=RETRY_AFTER,
        )
        await _drain(scope, receive)
        await error_response(busy)(scope, receive, send)


async def _drain(scope: Scope, receive: Receive) -> None:
    """Read and drop a request's body (see the module docstring), within bounds."""
    if (b"expect", b"100-continue") in scope["headers"]:
        return
    left = DEFAULT_MAX_BODY
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while left > 0:
                message = await receive()
                left -= len(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body"):
                    return
    except TimeoutError:
        return
