"""The one table that maps keyless errors to HTTP answers.

Every API answers bad input with a 4xx and ``{"code": N, "message": "..."}`` naming the problem
(contracts.md §5); an unexpected exception becomes a 500 whose body carries no stack trace.
Three layers make that hold for any request:

* :data:`EXCEPTION_HANDLERS` render keyless errors and Starlette's own 404/405 inside the app;
* :class:`CatchAllMiddleware` turns any other exception into a JSON 500 *without* re-raising
  it, so the server logs it once and keeps the keep-alive connection usable (Starlette's
  ``ServerErrorMiddleware`` re-raises, and uvicorn then drops the connection);
* :func:`json_error_http_protocol` is a uvicorn protocol whose answers to requests the HTTP
  parser rejects (RFC 9112 syntax errors: bad request line, header bytes, chunk sizes,
  conflicting lengths) are JSON too, and which times out request heads that never complete.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

from keyless import errors

logger = logging.getLogger(__name__)


class RequestTimeout(errors.Error):
    """The client did not send its request (body) in time: HTTP 408 (RFC 9110 §15.5.9)."""


class TooManyRequests(errors.Pushback):
    """This client spent its request budget: HTTP 429 with Retry-After (RFC 6585 §4)."""


#: error class → HTTP status. Order matters: the first matching class (by MRO) wins.
STATUS_BY_ERROR: dict[type[errors.Error], int] = {
    errors.InvalidInput: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    RequestTimeout: 408,
    errors.TooLarge: 413,
    errors.UnsupportedMediaType: 415,
    TooManyRequests: 429,
    errors.Pushback: 503,
    errors.Unavailable: 503,
    errors.StorageError: 503,
    errors.VerificationError: 400,
    errors.ConfigError: 500,
}


def status_for(exc: errors.Error) -> int:
    """The HTTP status for a keyless error (walks the class hierarchy)."""
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A JSON error body as Rekor and Fulcio send it: ``{"code": N, "message": "..."}``."""
    body = json.dumps({"code": status, "message": message}).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error_response(exc: errors.Error) -> Response:
    """Render a keyless error as its HTTP answer, with ``Retry-After``/``Location`` where due."""
    status = status_for(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, errors.Pushback | errors.Unavailable):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    elif status in (429, 503):  # e.g. a storage outage: every overload answer says when to retry
        headers["Retry-After"] = "1"
    if isinstance(exc, errors.Conflict) and exc.location:
        headers["Location"] = exc.location
    if isinstance(exc, errors.StorageError):
        # Driver and file-system messages name hosts, users and paths: log them, not answer them.
        logger.warning("storage unavailable: %s", exc)
        return json_error(status, "the database is unavailable; retry later", headers)
    if status >= 500 and not isinstance(exc, errors.Pushback | errors.Unavailable):
        logger.error("internal error: %s", exc)
        return json_error(status, "internal server error", headers)
    return json_error(status, str(exc), headers)


async def _keyless_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.Error)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's routing errors, with a message that says what was wrong with the request."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such resource: {_shorten(request.url.path)}"
    elif exc.status_code == 405:
        allow = headers.get("Allow") or headers.get("allow") or ""
        allowed = {m.strip() for m in allow.split(",") if m.strip()}
        if "GET" in allowed:  # HEAD comes with GET; naming it adds nothing
            allowed.discard("HEAD")
        message = f"method {request.method} is not allowed on {_shorten(request.url.path)}"
        message += f"; use {', '.join(sorted(allowed))}" if allowed else ""
    return json_error(exc.status_code, message, headers)


def _shorten(text: str, limit: int = 200) -> str:
    """A client-supplied string, cut to ``limit`` characters for an error message."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


async def _unexpected(_request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error", exc_info=exc)
    return json_error(500, "internal server error")


class CatchAllMiddleware:
    """Answer any exception the handlers did not render with a JSON 500 and log it once.

    Sits inside the access-log and metrics middleware (so they record the 500) and outside
    Starlette's ``ExceptionMiddleware``. If the response had already started, the connection is
    left to the server to close (there is no way to send a second status line).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if started:
                raise
            await unexpected_error(scope, exc)(scope, receive, send)


def unexpected_error(scope: Scope, exc: Exception) -> Response:
    """The answer to an exception no handler rendered, logged once: 503 + ``Retry-After`` for a
    momentarily busy database (:func:`is_transient`), else a JSON 500 without a stack trace."""
    if is_transient(exc):
        logger.warning("storage busy in %s %s: %s", scope.get("method"), scope.get("path"), exc)
        return json_error(503, "the service is busy; retry shortly", {"Retry-After": "1"})
    logger.exception(
        "unhandled error in %s %s", scope.get("method"), scope.get("path"), exc_info=exc
    )
    return json_error(500, "internal server error")


def is_transient(exc: BaseException) -> bool:
    """A database that is momentarily busy or unreachable (overload, failover), which the client
    should retry (contracts.md §5: overload answers 503 with Retry-After), not a bug.

    SQLite reports a writer that held the lock past ``busy_timeout`` as ``OperationalError:
    database is locked``; psycopg reports lost connections and pool exhaustion as
    ``OperationalError``/``PoolTimeout``.
    """
    import sqlite3

    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return "locked" in text or "busy" in text
    name, module = type(exc).__name__, type(exc).__module__
    return module.startswith("psycopg") and name in {"OperationalError", "PoolTimeout"}


EXCEPTION_HANDLERS: dict[int | type[Exception], ExceptionHandler] = {
    errors.Error: _keyless_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}


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
