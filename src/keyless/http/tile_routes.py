"""The read path of a tiled log over HTTP, shared by both log personalities.

Rekor v2 serves C2SP tlog-tiles and the CT log serves C2SP static-ct-api; both are
``/checkpoint`` plus ``/tile/<L>/<N>[.p/<W>]`` and a directory of entry bundles, parsed by the one
grammar :func:`keyless.formats.tiles.parse_tile_request`. What differs is named by a
:class:`TileApi`: the bundle directory (``entries`` / ``data``), the highest level, how long a
partial tile may be cached and whether a malformed path is a 400 or a 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from keyless.errors import InvalidInput, NotFound
from keyless.formats.tiles import MAX_LEVEL, TileWidthError, parse_tile_request
from keyless.http.requests import MAX_INT64

IMMUTABLE = "public, max-age=31536000, immutable"
#: Entries are stored with int64 indexes, so no tile lies further right than this.
MAX_SERVED_TILE_INDEX = MAX_INT64 >> 8


@dataclass(frozen=True)
class TileApi:
    """How one personality names and serves its tiles."""

    bundles: str  # the entry-bundle directory under tile/
    max_level: int
    partial_cache: str  # Cache-Control of a partial (.p/W) tile or bundle
    malformed_is_not_found: bool  # static-ct-api answers 404 to any path it does not serve


#: C2SP tlog-tiles (Rekor v2): a malformed path is a 400 naming the rule.
TLOG_TILES = TileApi("entries", MAX_LEVEL, "public, max-age=3600", malformed_is_not_found=False)
#: C2SP static-ct-api (the CT log): levels 0-5, ``tile/data/…``, every tile immutable.
STATIC_CT = TileApi("data", 5, IMMUTABLE, malformed_is_not_found=True)


def parse_tile_url(api: TileApi, path: str) -> tuple[int | None, int, int | None]:
    """The ``(level or None for a bundle, index, width)`` named by ``path`` (after ``tile/``)."""
    try:
        return parse_tile_request(
            path, bundles=api.bundles, max_level=api.max_level, max_index=MAX_SERVED_TILE_INDEX
        )
    except InvalidInput as exc:
        if not api.malformed_is_not_found:
            raise
        if isinstance(exc, TileWidthError):
            raise NotFound(f"tile width must be 1..255 in {path!r}") from None
        raise NotFound(f"no such tile path {path!r}") from None


def tile_routes(
    api: TileApi,
    *,
    checkpoint: Callable[[], Awaitable[bytes]],
    tile: Callable[[int, int, int | None], Awaitable[bytes]],
    bundle: Callable[[int, int | None], Awaitable[bytes]],
) -> list[BaseRoute]:
    """``/checkpoint`` and ``/tile/…`` over the given readers (``width`` None: a full tile)."""

    async def get_checkpoint(_request: Request) -> Response:
        return Response(
            await checkpoint(),
            media_type="text/plain; charset=utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def get_tile(request: Request) -> Response:
        level, index, width = parse_tile_url(api, request.path_params["path"])
        data = await bundle(index, width) if level is None else await tile(level, index, width)
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"Cache-Control": api.partial_cache if width else IMMUTABLE},
        )

    return [
        Route("/checkpoint", get_checkpoint, methods=["GET", "HEAD"]),
        Route("/tile/{path:path}", get_tile, methods=["GET", "HEAD"]),
    ]
