"""The stack's one ASGI layer in front of its router: what every request pays before its route.

For each HTTP request, in this order (what was four keyless middlewares and Starlette's two,
each wrapping ``send`` again, is one layer with one ``send`` wrapper):

1. metrics (:class:`~keyless.http.metrics.Metrics`): in flight, writes in flight (the drain
   signal), and when answered the request counter and the latency histogram;
2. bounded admission (:class:`~keyless.http.admission.Admission`): 503 + ``Retry-After`` at once
   when the process is full;
3. errors: a :mod:`keyless.errors` class or a routing ``HTTPException`` raised outside a
   route's own handling (404, 405) is rendered by its handler
   (:data:`keyless.http.errors.EXCEPTION_HANDLERS`, which routes also get, as Starlette's
   ``ExceptionMiddleware`` would hand them on); any other exception is answered by
   :func:`~keyless.http.errors.unexpected_error` (a JSON 500, or 503 for a busy database)
   without re-raising, so the connection stays usable. An exception after the answer has
   started is re-raised: uvicorn logs it and closes the connection;
4. the access line (:func:`keyless.http.logs.log_access`).

Everything else passes through (the lifespan).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

from keyless.http.admission import Admission
from keyless.http.errors import unexpected_error
from keyless.http.logs import access_logger, log_access
from keyless.http.metrics import WRITE_METHODS, Metrics, service_of


class FrontMiddleware:
    """Metrics, admission, error answers and the access line of every HTTP request to ``app``.

    ``handlers`` maps exception classes (and status codes, for ``HTTPException``) to Starlette
    exception handlers; an ``Exception`` or 500 entry is not used (unexpected errors are answered
    here, as the module docstring says).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        admission: Admission,
        handlers: Mapping[Any, ExceptionHandler],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.admission = admission
        by_class = {k: v for k, v in handlers.items() if isinstance(k, type) and k is not Exception}
        by_status = {k: v for k, v in handlers.items() if isinstance(k, int) and k != 500}
        #: what Starlette's ExceptionMiddleware puts in the scope for routes' own handling
        self._handlers = (by_class, by_status)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        metrics = self.metrics
        method: str = scope["method"]
        is_write = method in WRITE_METHODS
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                started = True
                if metrics.shared:
                    metrics.sync_counted()
            await send(message)

        metrics.in_flight += 1
        if is_write:
            metrics.write_started()
        try:
            try:
                held = await self.admission.admit(scope, receive, send_wrapper)
                if held is not None:
                    scope["starlette.exception_handlers"] = self._handlers
                    try:
                        await self.app(scope, receive, send_wrapper)
                    finally:
                        self.admission.release(held)
            except Exception as exc:
                if started:
                    raise
                await self._answer(exc, scope, receive, send_wrapper)
        finally:
            metrics.in_flight -= 1
            if is_write:
                metrics.write_finished()
            metrics.observe(service_of(scope["path"]), method, status, time.perf_counter() - start)
            if access_logger.isEnabledFor(logging.INFO):
                log_access(scope, status, start)

    async def _answer(self, exc: Exception, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer an exception raised before the response started."""
        by_class, by_status = self._handlers
        handler = by_status.get(exc.status_code) if isinstance(exc, HTTPException) else None
        if handler is None:
            handler = next((by_class[c] for c in type(exc).__mro__ if c in by_class), None)
        if handler is None:
            await unexpected_error(scope, exc)(scope, receive, send)
            return
        response: Response | None
        try:
            result = handler(Request(scope, receive, send), exc)  # type: ignore[arg-type]
            response = await result if inspect.isawaitable(result) else result
        except Exception as again:  # a handler that fails still gets the request answered
            response = unexpected_error(scope, again)
        if response is not None:
            await response(scope, receive, send)
        exc.__traceback__ = None  # a reused exception instance would pile up tracebacks
