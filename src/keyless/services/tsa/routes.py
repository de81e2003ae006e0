"""HTTP routes of the TSA (protocols.md §8; sigstore/timestamp-authority ``openapi.yaml``).

``POST /api/v1/timestamp`` speaks both dialects of interop.md §5 item 4:

* DER ``application/timestamp-query`` (sigstore-python, ``openssl ts``, curl's octet-stream):
  bad queries get **400 with a DER TimeStampResp** whose PKIStatusInfo is ``rejection`` with the
  failure bit (RFC 3161 §2.4.2: badAlg, badRequest, badDataFormat, unacceptedPolicy, …) so DER
  clients can read why; an untrusted clock gets **503** + Retry-After with ``timeNotAvailable``.
* JSON ``application/json`` (sigstore-js): bad requests get the usual ``{"code","message"}``.

Both succeed with 200 and a DER ``application/timestamp-reply``. Any other media type is 415,
an oversized body 413. The handlers render keyless errors themselves so that no app-level handler
is needed for the TSA never to answer 500 to bad input.
"""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from keyless import errors
from keyless.formats.tsp import (
    TIME_NOT_AVAILABLE,
    TimestampRejected,
    parse_query,
    query_from_json,
    rejection_response,
)
from keyless.server.errors import error_response
from keyless.server.requests import parse_json_object, read_body
from keyless.services.tsa.service import CERTCHAIN_PATH, TIMESTAMP_PATH, TimestampService

REPLY_TYPE = "application/timestamp-reply"
CHAIN_TYPE = "application/pem-certificate-chain"
#: Media types read as a DER TimeStampReq; ``timestamp-request`` is the pre-RFC 3161 name, and
#: octet-stream/none is what generic HTTP tools send.
DER_TYPES = frozenset(
    {"application/timestamp-query", "application/timestamp-request", "application/octet-stream", ""}
)
JSON_TYPE = "application/json"


def _der_rejection(status: int, failure: str, message: str, retry_after: float = 0) -> Response:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after else None
    return Response(
        rejection_response(failure, message),
        status_code=status,
        media_type=REPLY_TYPE,
        headers=headers,
    )


def tsa_routes(service: TimestampService) -> list[BaseRoute]:
    """The TSA's routes, relative to the port root (internal-apis.md URL layout)."""
    settings = service.settings

    async def timestamp(request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        try:
            if media == JSON_TYPE:
                body = await read_body(request, settings.max_json_request)
                query = query_from_json(parse_json_object(body, "timestamp request"))
                return Response(await service.timestamp_async(query), media_type=REPLY_TYPE)
            if media not in DER_TYPES:
                raise errors.UnsupportedMediaType(
                    f"unsupported content type {media!r}; send application/timestamp-query "
                    "(DER TimeStampReq) or application/json"
                )
            body = await read_body(request, settings.max_der_request)
            try:
                der = await service.timestamp_async(parse_query(body))
                return Response(der, media_type=REPLY_TYPE)
            except TimestampRejected as exc:
                return _der_rejection(400, exc.failure, str(exc))
            except errors.Unavailable as exc:
                return _der_rejection(503, TIME_NOT_AVAILABLE, str(exc), exc.retry_after)
        except errors.Error as exc:
            return error_response(exc)

    async def certchain(_request: Request) -> Response:
        return Response(service.chain_pem, media_type=CHAIN_TYPE)

    return [
        Route(TIMESTAMP_PATH, timestamp, methods=["POST"], name="tsa_timestamp"),
        Route(CERTCHAIN_PATH, certchain, methods=["GET"], name="tsa_certchain"),
    ]
