"""HTTP routes of the TSA (protocols.md §8; sigstore/timestamp-authority ``openapi.yaml``).

``POST /api/v1/timestamp`` speaks both dialects of interop.md §5 item 4:

* DER ``application/timestamp-query`` (sigstore-python, ``openssl ts`` + curl; also octet-stream);
* JSON ``application/json`` (sigstore-js).

Both succeed with 200 and a DER ``application/timestamp-reply``. Bad requests get **400** with
the usual ``{"code","message"}`` JSON (contracts.md §5, and what sigstore/timestamp-authority
answers), the message naming the RFC 3161 §2.4.2 failure (badAlg, badRequest, badDataFormat,
unacceptedPolicy, …); an untrusted clock gets **503** + Retry-After. A DER client that asks for
``Accept: application/timestamp-reply`` explicitly gets instead a DER TimeStampResp whose
PKIStatusInfo is ``rejection`` with the failure bit (``timeNotAvailable`` for the 503), which
``openssl ts -reply`` can print. Any other media type is 415, an oversized body 413. The handlers
render keyless errors themselves so that no app-level handler is needed for the TSA never to
answer 500 to bad input.
"""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from keyless import errors
from keyless.formats.tsp import (
    TIME_NOT_AVAILABLE,
    TimestampRejected,
    parse_query,
    query_from_json,
    rejection_response,
)
from keyless.http.budget import ClientBudget
from keyless.http.endpoints import send_answer
from keyless.http.errors import error_response
from keyless.http.requests import parse_json_object, read_body
from keyless.services.tsa.service import CERTCHAIN_PATH, TIMESTAMP_PATH, TimestampService

REPLY_TYPE = "application/timestamp-reply"
REPLY_TYPE_BYTES = REPLY_TYPE.encode("ascii")
CHAIN_TYPE = "application/pem-certificate-chain"
#: Media types read as a DER TimeStampReq; ``timestamp-request`` is the pre-RFC 3161 name, and
#: octet-stream/none is what generic HTTP tools send.
DER_TYPES = frozenset(
    {"application/timestamp-query", "application/timestamp-request", "application/octet-stream", ""}
)
JSON_TYPE = "application/json"
#: Budget units (~ms of CPU) of one timestamp: a query parsed and one signature (server/budget.py).
TIMESTAMP_COST = 0.25


def _der_rejection(status: int, failure: str, message: str, retry_after: float = 0) -> Response:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after else None
    return Response(
        rejection_response(failure, message),
        status_code=status,
        media_type=REPLY_TYPE,
        headers=headers,
    )


def _wants_der(request: Request) -> bool:
    """Whether the client asked for RFC 3161 replies even when the request is refused."""
    return REPLY_TYPE in request.headers.get("accept", "").lower()


class TimestampEndpoint:
    """The ASGI endpoint of ``POST /api/v1/timestamp``.

    A plain ASGI callable rather than a Starlette request/response function: on the hot path the
    DER reply goes out as two ASGI messages with no Response object
    (:func:`keyless.http.endpoints.send_answer`), which saves about a third of the per-request
    framework cost (bench/tsa.py). Errors still use Starlette responses: the TSA renders them
    itself (the module docstring says why), so it is not an ``AnswerEndpoint``.
    """

    def __init__(self, service: TimestampService, budget: ClientBudget | None = None) -> None:
        self.service = service
        self.budget = budget or ClientBudget()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        result = await self.handle(Request(scope, receive))
        if isinstance(result, Response):
            await result(scope, receive, send)
            return
        await send_answer(send, 200, result, REPLY_TYPE_BYTES)

    async def handle(self, request: Request) -> bytes | Response:
        """The DER ``TimeStampResp`` to send with 200, or an error response."""
        service, settings = self.service, self.service.settings
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        try:
            self.budget.admit(request, TIMESTAMP_COST)
            if media == JSON_TYPE:
                body = await read_body(request, settings.max_json_request)
                query = query_from_json(parse_json_object(body, "timestamp request"))
                return await service.timestamp_async(query)
            if media not in DER_TYPES:
                raise errors.UnsupportedMediaType(
                    f"unsupported content type {media!r}; send application/timestamp-query "
                    "(DER TimeStampReq) or application/json"
                )
            body = await read_body(request, settings.max_der_request)
            try:
                return await service.timestamp_async(parse_query(body))
            except TimestampRejected as exc:
                if _wants_der(request):
                    return _der_rejection(400, exc.failure, str(exc))
                raise
            except errors.Unavailable as exc:
                if _wants_der(request):
                    return _der_rejection(503, TIME_NOT_AVAILABLE, str(exc), exc.retry_after)
                raise
        except errors.Error as exc:
            return error_response(exc)


def routes(service: TimestampService, budget: ClientBudget | None = None) -> list[Route]:
    """``POST /api/v1/timestamp`` and ``GET /api/v1/timestamp/certchain`` over ``service``,
    relative to the port root (internal-apis.md URL layout); timestamps spend a per-client
    ``budget`` (default :class:`ClientBudget`'s; 429 when spent)."""

    async def certchain(_request: Request) -> Response:
        return Response(service.chain_pem, media_type=CHAIN_TYPE)

    return [
        Route(
            TIMESTAMP_PATH, TimestampEndpoint(service, budget), methods=["POST"],
            name="tsa_timestamp",
        ),
        Route(CERTCHAIN_PATH, certchain, methods=["GET"], name="tsa_certchain"),
    ]
