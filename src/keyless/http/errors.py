"""The one table that maps keyless errors to HTTP answers.

Every API answers bad input with a 4xx and ``{"code": N, "message": "..."}`` naming the problem
(contracts.md §5); an unexpected exception becomes a 500 whose body carries no stack trace.
Three layers make that hold for any request:

* :data:`EXCEPTION_HANDLERS` render keyless errors and Starlette's own 404/405 inside the app;
* :func:`unexpected_error` answers any other exception with a JSON 500 *without* re-raising
  it (the stack's front layer, :mod:`keyless.http.front`, and :class:`CatchAllMiddleware` for
  the smaller apps), so the server logs it once and keeps the keep-alive connection usable
  (Starlette's ``ServerErrorMiddleware`` re-raises, and uvicorn then drops the connection);
* :func:`keyless.http.protocol.json_error_http_protocol` is a uvicorn protocol whose answers to
  requests the HTTP parser rejects (RFC 9112 syntax errors: bad request line, header bytes,
  chunk sizes, conflicting lengths) are JSON too, and which times out request heads that never
  complete.
"""

from __future__ import annotations

import json
import logging
import math

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
