"""Reading request bodies safely: bounded size, clear errors for bad JSON.

Every handler reads its body through these helpers so that an oversized or malformed request is
answered with a 4xx naming the problem (contracts.md §5) and never buffers unbounded input.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from starlette.requests import ClientDisconnect, Request

from keyless.errors import InvalidInput, TooLarge
from keyless.http.errors import RequestTimeout

DEFAULT_MAX_BODY = 4 * 1024 * 1024
#: Log indexes and tree sizes are int64 in the Rekor and CT APIs and in every storage backend.
MAX_INT64 = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,20}")
#: A JSON escape in ``\\uD800``-``\\uDFFF`` or the raw UTF-8-style bytes of a surrogate: only then
#: can the parsed value hold a lone surrogate, so only then is the exact check needed. Two
#: patterns, each with a literal first byte, so ``re`` scans with a fast literal search: one
#: alternation took ~100 ms over a 4 MiB body, on the event loop, for any anonymous client.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE_BYTES = re.compile(rb"\xed[\xa0-\xbf]")
_INTEGER = re.compile(r"-?[0-9]{1,20}")
#: A client that sends no body bytes for this long is cut off (408): slow-body (slowloris)
#: clients must not hold a worker forever (contracts.md §5: never a hang).
BODY_IDLE_TIMEOUT = 10.0
#: The whole body must arrive within this time, however it trickles in.
BODY_TOTAL_TIMEOUT = 60.0


async def read_body(
    request: Request,
    limit: int = DEFAULT_MAX_BODY,
    *,
    idle_timeout: float = BODY_IDLE_TIMEOUT,
    total_timeout: float = BODY_TOTAL_TIMEOUT,
) -> bytes:
    """Read the whole body, refusing (413) as soon as it exceeds ``limit`` bytes and (408) a
    body that stalls for ``idle_timeout`` seconds or takes longer than ``total_timeout``.

    The declared ``Content-Length`` is checked first, so an oversized upload is refused before
    it is read; a chunked body (no length, RFC 9112 §7.1) is counted as it arrives.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not _DIGITS.fullmatch(declared):
            raise InvalidInput("Content-Length is not a non-negative number")
        size = int(declared)
        if size > limit:
            raise TooLarge(f"request body of {size} bytes exceeds the limit of {limit} bytes")
    # one timer for the whole body, moved on after each chunk (an asyncio.timeout per chunk
    # cost three timer set-ups per request); ``receive`` directly, so that the last chunk
    # (``more_body`` false) ends the read without another round trip through the stream
    loop = asyncio.get_running_loop()
    deadline = loop.time() + total_timeout
    chunks: list[bytes] = []
    total = 0
    idle_at = loop.time() + idle_timeout
    idle = idle_at < deadline  # whether the timer's current deadline is the idle one
    try:
        async with asyncio.timeout_at(min(idle_at, deadline)) as timer:
            while True:
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect
                chunk = message.get("body", b"")
                total += len(chunk)
                if total > limit:
                    raise TooLarge(f"request body exceeds the limit of {limit} bytes")
                if chunk:
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
                idle_at = loop.time() + idle_timeout
                idle = idle_at < deadline
                timer.reschedule(min(idle_at, deadline))
    except TimeoutError as exc:
        what = (
            f"no request body data arrived for {idle_timeout:g} s"
            if idle
            else f"the request body took longer than {total_timeout:g} s"
        )
        raise RequestTimeout(f"{what}; send the whole body promptly") from exc
    except ClientDisconnect as exc:
        raise InvalidInput("the client disconnected before sending the whole body") from exc
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


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
    if _SURROGATE_ESCAPE.search(body) or _SURROGATE_BYTES.search(body):
        # RFC 8259 §8.2: a lone surrogate escape is syntactically valid JSON, but no string can
        # hold it; refuse it here rather than let every later encode() fail.
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInput(
                f"{what} holds a string with a lone UTF-16 surrogate (not valid Unicode)"
            ) from exc
    return value


async def read_json_object(
    request: Request, limit: int = DEFAULT_MAX_BODY, what: str = "request body"
) -> dict[str, Any]:
    """Read and parse a bounded JSON object body."""
    return parse_json_object(await read_body(request, limit), what)


def query_int(
    request: Request,
    name: str,
    default: int | None = None,
    *,
    minimum: int = 0,
    maximum: int = MAX_INT64,
    required: bool = False,
) -> int | None:
    """A single ASCII-decimal integer query parameter within ``[minimum, maximum]``.

    Absent or empty gives ``default`` (or 400 when ``required``); a repeated parameter, a
    non-decimal value (``1.5``, ``1e3``, ``NaN``, Unicode digits) or one out of range is 400
    with a message naming the parameter and the allowed range.
    """
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise InvalidInput(f"query parameter {name!r} is repeated; give it once")
    raw = values[0] if values else ""
    if raw == "":
        if required:
            raise InvalidInput(f"query parameter {name!r} is required")
        return default
    if not _INTEGER.fullmatch(raw) or not minimum <= int(raw) <= maximum:
        raise InvalidInput(
            f"query parameter {name!r} must be an integer from {minimum} to {maximum}"
        )
    return int(raw)


def path_int(raw: str, what: str, *, maximum: int = MAX_INT64) -> int:
    """A non-negative ASCII-decimal integer from a URL path segment, at most ``maximum``."""
    if not _DIGITS.fullmatch(raw) or int(raw) > maximum:
        raise InvalidInput(f"{what} must be an integer from 0 to {maximum}")
    return int(raw)
