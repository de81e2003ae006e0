"""The one table that maps keyless errors to HTTP answers.

Every API answers bad input with a 4xx and ``{"code": N, "message": "..."}`` naming the problem
(contracts.md §5); an unexpected exception becomes a 500 whose body carries no stack trace.
"""

from __future__ import annotations

import json
import logging
import math

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ExceptionHandler

from keyless import errors

logger = logging.getLogger(__name__)

#: error class → HTTP status. Order matters: the first matching class (by MRO) wins.
STATUS_BY_ERROR: dict[type[errors.Error], int] = {
    errors.InvalidInput: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.UnsupportedMediaType: 415,
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
    if isinstance(exc, errors.Conflict) and exc.location:
        headers["Location"] = exc.location
    if status >= 500 and not isinstance(
        exc, errors.Pushback | errors.Unavailable | errors.StorageError
    ):
        logger.error("internal error: %s", exc)
        return json_error(status, "internal server error", headers)
    return json_error(status, str(exc), headers)


async def _keyless_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.Error)
    return error_response(exc)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return json_error(exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def _unexpected(_request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error", exc_info=exc)
    return json_error(500, "internal server error")


EXCEPTION_HANDLERS: dict[int | type[Exception], ExceptionHandler] = {
    errors.Error: _keyless_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
