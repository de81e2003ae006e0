"""Reading request bodies safely: bounded size, clear errors for bad JSON.

Every handler reads its body through these helpers so that an oversized or malformed request is
answered with a 4xx naming the problem (contracts.md §5) and never buffers unbounded input.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from keyless.errors import InvalidInput, TooLarge

DEFAULT_MAX_BODY = 4 * 1024 * 1024


async def read_body(request: Request, limit: int = DEFAULT_MAX_BODY) -> bytes:
    """Read the whole body, refusing (413) as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError as exc:
            raise InvalidInput("Content-Length is not a number") from exc
        if size > limit:
            raise TooLarge(f"request body of {size} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise TooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json_object(body: bytes, what: str = "request body") -> dict[str, Any]:
    """Parse ``body`` as a JSON object, or raise :class:`InvalidInput` saying why not."""
    if not body:
        raise InvalidInput(f"{what} is empty; a JSON object is required")
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


async def read_json_object(
    request: Request, limit: int = DEFAULT_MAX_BODY, what: str = "request body"
) -> dict[str, Any]:
    """Read and parse a bounded JSON object body."""
    return parse_json_object(await read_body(request, limit), what)
