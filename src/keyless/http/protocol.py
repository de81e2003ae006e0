"""The stack's HTTP/1.1 connections: uvicorn's httptools protocol with keyless's limits.

:func:`json_error_http_protocol` answers what the HTTP parser rejects (RFC 9112 syntax errors:
bad request line, header bytes, chunk sizes, conflicting lengths) with a JSON error, as every
other error of the API (:mod:`keyless.http.errors`); it times out request heads that never
complete (408) and refuses heads larger than a bound (431); and through :class:`HeldWrites` it
writes an answer's head and its first body chunk in one piece.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

#: How long a client may take to send a request's head (request line + headers) once it has
#: started: a head that never completes (slowloris) is answered 408 and the connection closed.
HEADER_TIMEOUT = 10.0
#: Largest request head (request line + headers); a larger one is answered 431 (RFC 6585 §5)
#: instead of being buffered without bound.
MAX_HEAD_BYTES = 64 * 1024


def _raw_json_error(status: int, reason: bytes, message: str) -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 error response with a JSON body."""
    body = json.dumps({"code": status, "message": message}).encode()
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        )
    )


class HeldWrites:
    """A connection's transport as uvicorn's request cycles see it: the head of an answer is
    held until its first body chunk, and both go out in one ``write`` — one ``send()`` system
    call and one TCP segment instead of two (on loopback each ``send()`` also runs the
    receiver's side of TCP; the head's was about a fifth of a timestamp's server CPU). The bytes
    and their order are unchanged; anything held is written before the connection is closed."""

    __slots__ = ("_held", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._held: list[bytes] | None = None

    def hold(self) -> None:
        """Hold what is written until :meth:`flush`."""
        self._held = []

    def flush(self) -> None:
        """Write what is held, in one piece (dropped if the connection is already closing)."""
        held, self._held = self._held, None
        if held and not self.transport.is_closing():
            self.transport.write(held[0] if len(held) == 1 else b"".join(held))

    def write(self, data: bytes) -> None:
        if self._held is not None:
            self._held.append(data)
        else:
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def json_error_http_protocol(
    header_timeout: float = HEADER_TIMEOUT, max_head_bytes: int = MAX_HEAD_BYTES
) -> type[Any]:
    """uvicorn's httptools protocol with JSON answers for unparseable requests.

    Pass the result as ``uvicorn.Config(http=...)``. Requests the parser rejects get a 400
    JSON body naming the parser's complaint (instead of uvicorn's text/plain "Invalid HTTP
    request received."), a request head that is not complete ``header_timeout`` seconds after
    its first byte gets a 408 and one larger than ``max_head_bytes`` a 431 (uvicorn itself waits
    for and buffers a head without limit).
    """
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class JsonErrorHttpToolsProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _in_head = False  # a request head has started and is not complete
        _head_bytes = 0  # bytes received while the head is incomplete
        _head_parsed = 0  # size of the URL and headers the parser delivered
        _held: HeldWrites

        def data_received(self, data: bytes) -> None:
            # Between requests: no cycle, or the last one answered *and* its body fully read
            # (after an early 413 the rest of that body still arrives, and it is not a head).
            idle = self.cycle is None or (
                self.cycle.response_complete and not self.cycle.more_body
            )
            if idle and not self._in_head and not self.pipeline:
                self._in_head = True
                self._head_bytes = 0
            if self._in_head:
                self._head_bytes += len(data)
            self._unset_keepalive_if_required()
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:  # as uvicorn does (keyless has no WebSocket)
                self._cancel_head_timer()
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
            except httptools.HttpParserError as exc:
                self._cancel_head_timer()
                cause = exc.__cause__ or exc.__context__  # a callback's own error, if any
                reason = str(cause or exc).strip() or "unparseable request"
                self.logger.info("malformed HTTP request: %s", reason)
                self._close_with(400, b"Bad Request", f"malformed HTTP request: {reason}")
                return
            # Still inside the head after this data: everything counted so far is head. The
            # deadline is set only now (from this first byte of the head, as before): most heads
            # arrive whole in one read and need no timer at all.
            if self._in_head:
                if self._head_bytes > max_head_bytes:
                    self._too_large()
                elif self._head_timer is None:
                    self._head_timer = self.loop.call_later(
                        header_timeout, self._head_timed_out
                    )

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._held = HeldWrites(transport)
            # A connection that never sends a head is cut off like one that sends half of one.
            self._head_timer = self.loop.call_later(header_timeout, self._head_timed_out)
            self._in_head = True
            self._head_bytes = 0

        def _should_upgrade_to_ws(self) -> bool:
            return False  # no keyless API is a WebSocket: answer upgrade requests as plain HTTP

        def on_message_begin(self) -> None:
            self._head_parsed = 0
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            self._head_parsed += len(url)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._head_parsed += len(name) + len(value) + 4
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._cancel_head_timer()
            if self._head_parsed > max_head_bytes:  # a whole oversized head in one read
                self._too_large()
                return
            super().on_headers_complete()
            cycle = self.cycle
            if cycle is not None:
                send = cycle.send
                held = self._held
                cycle.transport = held  # type: ignore[assignment]

                async def send_whole(message: Any) -> None:
                    if message["type"] == "http.response.start":
                        # Answered before its body arrived (413, 408, a 404 on a POST …):
                        # whatever follows is the rest of that body, not a request head. Say
                        # "Connection: close" and close after the answer, as h11 does.
                        if cycle.more_body:
                            cycle.keep_alive = False
                        held.hold()
                        try:
                            await send(message)
                        except BaseException:
                            held.flush()
                            raise
                        return
                    try:
                        await send(message)
                    finally:
                        held.flush()

                cycle.send = send_whole  # type: ignore[method-assign]

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            self._close_with(400, b"Bad Request", msg)

        def _cancel_head_timer(self) -> None:
            """The head is complete, or the connection is done with: no deadline."""
            self._in_head = False
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            self._in_head = False
            if not self.transport.is_closing():
                self._close_with(
                    408,
                    b"Request Timeout",
                    f"the request head was not complete within {header_timeout:g} s",
                )

        def _too_large(self) -> None:
            self._cancel_head_timer()
            self._close_with(
                431,
                b"Request Header Fields Too Large",
                f"the request head exceeds the limit of {max_head_bytes} bytes",
            )

        def _close_with(self, status: int, reason: bytes, message: str) -> None:
            if not self.transport.is_closing():
                self.transport.write(_raw_json_error(status, reason, message))
                self.transport.close()

    return JsonErrorHttpToolsProtocol
