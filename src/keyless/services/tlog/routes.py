"""HTTP routes of the transparency log (Starlette), relative to each API's base URL.

URL layout (docs/internal-apis.md): Rekor v1 at the port root (``/api/v1/log…``,
``/api/v1/index/retrieve``); Rekor v2 under ``/rekor``: ``/api/v2/log/entries`` plus the C2SP
tlog-tiles read API at ``/checkpoint`` and ``/tile/…``, served under ``/api/v2/…`` too because
which prefix public hosts use is uncertain (protocols.md §4). Handlers only translate HTTP to
service calls; errors are ``keyless.errors`` exceptions rendered by the one error table.

keyless additions (beyond Rekor): ``GET <base>/api/v2/log/entries/<logIndex>`` answers an
existing v2 entry as a ``TransparencyLogEntry`` proven at the latest checkpoint (rekor-tiles
only serves tiles). Search: ``GET <base>/api/v1/search`` (v1) and ``GET <base>/api/v2/search``
(v2) with query parameters ``digest=sha256:<hex>``, ``email=``, ``uri=``, ``identity=`` (+
``issuer=``), ``keyFingerprint=sha256:<hex of DER SPKI>``, ``operator=and|or``,
``after=<logIndex>``, ``limit=<n>`` (1-100, default 100: every result carries an inclusion
proof, so a page costs about 2 ms per entry); the answer is ``{"entries": [...], "more": bool}``
where each entry is the API's own entry form (v2 ``TransparencyLogEntry``, v1 ``LogEntry``
map), so results can be verified.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from keyless.errors import Conflict, InvalidInput
from keyless.http.budget import ClientBudget, client_address
from keyless.http.endpoints import Answer, AnswerEndpoint
from keyless.http.requests import (
    parse_json_object,
    path_int,
    query_int,
    read_body,
)
from keyless.http.tile_routes import TLOG_TILES
from keyless.http.tile_routes import tile_routes as shared_tile_routes
from keyless.log.seam import LogEngine
from keyless.services.tlog import kinds
from keyless.services.tlog.service import (
    LogServiceBase,
    RekorV1Service,
    RekorV2Service,
    query_from_params,
)

JSON = "application/json"


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(value, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def tile_routes(log: LogEngine) -> list[BaseRoute]:
    """``/checkpoint`` and ``/tile/…`` (C2SP tlog-tiles) over ``log``."""
    return shared_tile_routes(
        TLOG_TILES, checkpoint=log.checkpoint, tile=log.tile, bundle=log.entry_bundle
    )


#: Lookups in requests larger than this are canonicalised in a worker thread.
OFFLOAD_BODY = 64 * 1024
#: Budget units (~ms of CPU) one search result costs: it is answered with an inclusion proof.
UNITS_PER_RESULT = 2.0


async def _json_body(
    request: Request, service: LogServiceBase, budget: ClientBudget
) -> tuple[dict[str, Any], bool]:
    """A budgeted JSON body and whether it is large enough to process off the event loop."""
    client = budget.admit(request)
    body = await read_body(request, service.limits.max_body)
    budget.settle_body(request, client, len(body))
    return parse_json_object(body), len(body) > OFFLOAD_BODY


async def _entry_body(
    request: Request, service: LogServiceBase, budget: ClientBudget,
    single_check: Callable[[dict[str, Any]], bool],
) -> tuple[dict[str, Any], bool]:
    """A budgeted proposed entry, and whether to verify it in a worker thread: always, unless
    it is small and its verification is one signature check (``single_check``, e.g.
    hashedrekord) — then the thread hop would cost as much as the check. Even a small DSSE
    body can hold 16 signatures x 16 P-521 keys (a quarter second of CPU)."""
    value, large = await _json_body(request, service, budget)
    return value, large or not single_check(value)


async def _search(
    request: Request, service: LogServiceBase, budget: ClientBudget
) -> tuple[list[int], bool]:
    """A budgeted search: admitted like any request, charged per result (each gets a proof)."""
    client = budget.admit(request)
    params, after, limit = _search_params(request)
    indexes, more = await service.search(query_from_params(params), after=after, limit=limit)
    budget.charge(client, len(indexes) * UNITS_PER_RESULT)
    return indexes, more


def _int_param(
    request: Request, name: str, default: int | None = None, *, minimum: int = 0
) -> int | None:
    return query_int(request, name, default, minimum=minimum)


#: Most entries one search page returns (``more`` tells the client to page on with ``after``).
SEARCH_PAGE = 100


def _search_params(request: Request) -> tuple[dict[str, str], int, int]:
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key in ("after", "limit"):
            continue
        if key in params:
            raise InvalidInput(f"query parameter {key} is repeated; give it once")
        params[key] = value
    after = _int_param(request, "after", -1, minimum=-1)
    limit = _int_param(request, "limit", SEARCH_PAGE, minimum=1)
    assert after is not None and limit is not None
    return params, after, min(limit, SEARCH_PAGE)


def routes(
    service: RekorV2Service | RekorV1Service, budget: ClientBudget | None = None
) -> list[BaseRoute]:
    """The routes of either personality relative to its base URL: Rekor v2's (``P/rekor``) or
    Rekor v1's (the port root). ``budget``: per-client limits (default :class:`ClientBudget`'s)."""
    if isinstance(service, RekorV2Service):
        return _v2_routes(service, budget or ClientBudget())
    return _v1_routes(service, budget or ClientBudget())


def _v2_routes(service: RekorV2Service, budget: ClientBudget) -> list[BaseRoute]:
    """Rekor v2 routes relative to its base URL (e.g. ``/rekor``); writes and searches spend a
    per-client budget (:mod:`keyless.http.budget`)."""

    async def create(request: Request) -> Answer:
        proposed, offload = await _entry_body(request, service, budget, kinds.single_check_v2)
        body, index, duplicate = await service.create_entry_json(proposed, offload=offload)
        return 200 if duplicate else 201, [(b"x-log-index", b"%d" % index)], body

    async def search(request: Request) -> Response:
        indexes, more = await _search(request, service, budget)
        return _json({"entries": [await service.entry_at(i) for i in indexes], "more": more})

    async def get_entry(request: Request) -> Response:
        return _json(await service.entry_at(path_int(request.path_params["index"], "log index")))

    tiles = tile_routes(service.log)
    return [
        # the hot write: a plain ASGI endpoint (keyless.http.endpoints), same answers
        Route("/api/v2/log/entries", AnswerEndpoint(create), methods=["POST"]),
        Route("/api/v2/log/entries/{index}", get_entry, methods=["GET"]),
        Route("/api/v2/search", search, methods=["GET"]),
        *tiles,
        *[Route("/api/v2" + r.path, r.endpoint, methods=["GET", "HEAD"])
          for r in tiles if isinstance(r, Route)],
    ]


def _v1_routes(service: RekorV1Service, budget: ClientBudget) -> list[BaseRoute]:
    """Rekor v1 routes relative to its base URL (the port root); writes, lookups and searches
    spend a per-client budget (:mod:`keyless.http.budget`)."""

    async def create(request: Request) -> Response:
        proposed, offload = await _entry_body(request, service, budget, kinds.single_check_v1)
        entry_id, entry, duplicate = await service.create_entry(proposed, offload=offload)
        location = request.url.path.rstrip("/") + "/" + entry_id
        if duplicate:
            raise Conflict(
                "an equivalent entry already exists in the transparency log with UUID "
                + entry_id,
                location=location,
            )
        return _json(entry, status=201, headers={"ETag": entry_id, "Location": location})

    async def get_entries(request: Request) -> Response:
        index = _int_param(request, "logIndex")
        if index is None:
            raise InvalidInput("logIndex query parameter is required")
        return _json(await service.entry_by_index(index))

    async def get_entry(request: Request) -> Response:
        return _json(await service.entry_by_uuid(request.path_params["uuid"]))

    async def retrieve(request: Request) -> Response:
        body, offload = await _json_body(request, service, budget)
        return _json(await service.retrieve(body, offload=offload))

    async def log_info(_request: Request) -> Response:
        return _json(await service.log_info())

    async def proof(request: Request) -> Response:
        tree_id = request.query_params.get("treeID")
        if tree_id and tree_id != str(service.tree_id):
            raise InvalidInput(f"treeID {tree_id} is not this log's tree ({service.tree_id})")
        first = _int_param(request, "firstSize", 1, minimum=1)
        assert first is not None
        last = _int_param(request, "lastSize", minimum=1)
        return _json(await service.consistency(first, last))

    async def public_key(request: Request) -> Response:
        tree_id = request.query_params.get("treeID")
        if tree_id and tree_id != str(service.tree_id):
            raise InvalidInput(f"treeID {tree_id} is not this log's tree ({service.tree_id})")
        return Response(service.public_key_pem(), media_type="application/x-pem-file")

    async def index_retrieve(request: Request) -> Response:
        body, _ = await _json_body(request, service, budget)
        ids = await service.index_retrieve(body)
        budget.charge(client_address(request), len(ids) / 10)  # entry IDs only, no proofs
        return _json(ids)

    async def search(request: Request) -> Response:
        indexes, more = await _search(request, service, budget)
        return _json({"entries": [await service.entry_by_index(i) for i in indexes],
                      "more": more})

    return [
        Route("/api/v1/log/entries", create, methods=["POST"]),
        Route("/api/v1/log/entries", get_entries, methods=["GET"]),
        Route("/api/v1/log/entries/retrieve", retrieve, methods=["POST"]),
        Route("/api/v1/log/entries/{uuid}", get_entry, methods=["GET"]),
        Route("/api/v1/log", log_info, methods=["GET"]),
        Route("/api/v1/log/proof", proof, methods=["GET"]),
        Route("/api/v1/log/publicKey", public_key, methods=["GET"]),
        Route("/api/v1/index/retrieve", index_retrieve, methods=["POST"]),
        Route("/api/v1/search", search, methods=["GET"]),
    ]


def retired_routes(routes: list[BaseRoute], active_base: str) -> list[BaseRoute]:
    """The GET/HEAD routes of a Rekor v2 shard retired by a log rotation: it stays readable but
    takes no writes; a write is answered 410 Gone naming the active shard (where a client should
    send it instead)."""

    async def retired(_request: Request) -> JSONResponse:
        message = f"this Rekor v2 shard is retired (read-only); add entries at {active_base}"
        return JSONResponse({"code": 410, "message": message}, status_code=410)

    read = {"GET", "HEAD"}
    kept = [r for r in routes if isinstance(r, Route) and r.methods and r.methods <= read]
    return [*kept, Route("/api/v2/log/entries", retired, methods=["POST"])]
