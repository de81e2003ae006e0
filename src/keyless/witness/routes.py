"""The witness's HTTP routes (C2SP tlog-witness), with its submission prefix at the port root.

``POST /add-checkpoint``, ``GET /<hex sha256(origin)>/checkpoint`` (the latest cosigned
checkpoint per log, for monitors), ``GET /healthz`` and ``GET /metrics``.
"""

from __future__ import annotations

import asyncio
import math
import re

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from keyless import errors
from keyless.http.errors import error_response, json_error
from keyless.http.requests import read_body
from keyless.witness.service import MAX_BODY, WitnessRefusal, WitnessService

#: exactly this media type, without parameters: Go clients compare it literally
SIZE_MEDIA_TYPE = "text/x.tlog.size"
_HASH_RE = re.compile(r"[0-9a-f]{64}\Z")


def _refusal(exc: WitnessRefusal) -> Response:
    if exc.status == 409 and exc.size is not None:
        response = Response(f"{exc.size}\n".encode(), status_code=409)
        response.headers["Content-Type"] = SIZE_MEDIA_TYPE
        return response
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return json_error(exc.status, str(exc), headers)


def routes(service: WitnessService) -> list[BaseRoute]:
    """The witness's routes over ``service``."""

    async def add_checkpoint(request: Request) -> Response:
        try:
            body = await read_body(request, MAX_BODY)
            lines = await service.add_checkpoint(body)
        except WitnessRefusal as exc:
            return _refusal(exc)
        except errors.Error as exc:
            return error_response(exc)
        return Response(lines, media_type="text/plain; charset=utf-8")

    async def monitoring(request: Request) -> Response:
        hashed = request.path_params["origin_hash"]
        if not _HASH_RE.match(hashed):
            return json_error(404, "no such log: expected a lowercase hex SHA-256 of its origin")
        note = await asyncio.to_thread(service.monitoring_checkpoint, hashed)
        if note is None:
            return json_error(404, "this witness has not cosigned a checkpoint of that log")
        return Response(note, media_type="text/plain; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def metrics(_request: Request) -> Response:
        sizes = await asyncio.to_thread(service.sizes)
        lines = [
            "# HELP keyless_witness_log_size Size of the latest checkpoint cosigned, per log.",
            "# TYPE keyless_witness_log_size gauge",
        ]
        lines += [f'keyless_witness_log_size{{origin="{_esc(o)}"}} {v:g}' for o, v in
                  sorted(sizes.items())]
        lines += [
            "# HELP keyless_witness_answers_total add-checkpoint answers by log and status.",
            "# TYPE keyless_witness_answers_total counter",
        ]
        lines += [
            f'keyless_witness_answers_total{{origin="{_esc(o)}",status="{s}"}} {n}'
            for (o, s), n in sorted(service.stats.answers.items())
        ]
        return PlainTextResponse("\n".join(lines) + "\n",
                                 media_type="text/plain; version=0.0.4")

    return [
        Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
        Route("/{origin_hash}/checkpoint", monitoring, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]




def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
