"""The tile read path of both log personalities, pinned byte for byte at the HTTP level.

Rekor v2 serves C2SP tlog-tiles (``/rekor/checkpoint``, ``/rekor/tile/<L>/<N>[.p/<W>]``,
``/rekor/tile/entries/…``, also under ``/rekor/api/v2/…``); the CT log serves C2SP static-ct-api
(``/checkpoint``, ``/tile/<L>/…``, ``/tile/data/…``). Status codes, media types, cache headers and
error messages are what clients and caches see, so they are fixed here for both.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from keyless.errors import InvalidInput, NotFound
from keyless.formats.tiles import decode_entry_bundle
from keyless.http.errors import EXCEPTION_HANDLERS
from keyless.http.tile_routes import STATIC_CT, TLOG_TILES, TileApi, parse_tile_url
from keyless.merkle import leaf_hash
from keyless.services.ctlog.routes import routes as ctlog_routes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tlog"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ca"))

from ca_testkit import build_stack as build_ca_stack
from tlog_support import build_stack as build_tlog_stack

IMMUTABLE = "public, max-age=31536000, immutable"
PARTIAL = "public, max-age=3600"
OCTETS = "application/octet-stream"
NOTE = "text/plain; charset=utf-8"
#: An index of 1,501 digit groups: far more digits than Python converts to text by default.
HUGE = "x999/" * 1500 + "999"
FAR = "x999/" * 9 + "000"


@pytest.fixture
async def rekor() -> AsyncIterator[httpx.AsyncClient]:
    stack = await build_tlog_stack()
    await asyncio.gather(*(stack.v2_log.add(b"entry %d" % i) for i in range(299)))  # + seed
    transport = httpx.ASGITransport(app=stack.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:3000") as c:
        yield c
    await stack.close()


@pytest.fixture
async def ct(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    stack = build_ca_stack(tmp_path / "ca")  # a CT log holding its two seed entries
    app = Starlette(routes=ctlog_routes(stack.ctlog), exception_handlers=EXCEPTION_HANDLERS)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ct.test") as c:
        yield c
    await stack.engine.close()


async def _both_methods(client: httpx.AsyncClient, path: str) -> httpx.Response:
    """GET ``path``; HEAD must answer the same status and headers with an empty body."""
    got = await client.get(path)
    head = await client.head(path)
    assert head.status_code == got.status_code, path
    assert head.content == b""
    names = ["content-type", "cache-control"]
    if not path.endswith("/checkpoint"):  # a CT checkpoint is signed afresh for each request
        names.append("content-length")
    for name in names:
        assert head.headers.get(name) == got.headers.get(name), (path, name)
    return got


@pytest.mark.parametrize("prefix", ["/rekor", "/rekor/api/v2"])
async def test_tlog_tiles_served(rekor: httpx.AsyncClient, prefix: str) -> None:
    note = await _both_methods(rekor, f"{prefix}/checkpoint")
    assert (note.status_code, note.headers["content-type"]) == (200, NOTE)
    assert note.headers["cache-control"] == "no-cache"
    assert note.content.startswith(b"localhost:3000/rekor\n300\n")
    served = {
        "tile/0/000": (IMMUTABLE, 8192),
        "tile/0/001.p/44": (PARTIAL, 44 * 32),
        "tile/1/000.p/1": (PARTIAL, 32),
        "tile/entries/000": (IMMUTABLE, None),
        "tile/entries/001.p/44": (PARTIAL, None),
        "tile/0/001.p/7": (PARTIAL, 7 * 32),  # a narrower view of the partial tile
    }
    for path, (cache, length) in served.items():
        r = await _both_methods(rekor, f"{prefix}/{path}")
        assert r.status_code == 200, path
        assert (r.headers["content-type"], r.headers["cache-control"]) == (OCTETS, cache), path
        if length is not None:
            assert len(r.content) == length, path
    bundle = decode_entry_bundle((await rekor.get(f"{prefix}/tile/entries/001.p/44")).content, 44)
    assert bundle[-1] == b"entry 298"
    level0 = (await rekor.get(f"{prefix}/tile/0/001.p/44")).content
    assert level0[-32:] == leaf_hash(b"entry 298")


TLOG_REFUSED = [
    ("tile/0/1", 400, "tile index must be 3-digit groups, all but the last prefixed 'x'"),
    ("tile/64/000", 400, "tile level '64' must be 0-63 (or 'entries')"),
    ("tile/00/000", 400, "tile level '00' must be 0-63 (or 'entries')"),
    ("tile/data/000", 400, "tile level 'data' must be 0-63 (or 'entries')"),
    ("tile/", 400, "tile level '' must be 0-63 (or 'entries')"),
    ("tile/0/x000/001", 400, "tile index has a superfluous leading zero group"),
    ("tile/0/x000/" + HUGE, 400, "tile index has a superfluous leading zero group"),
    ("tile/0/000.p/0", 400, "partial tile width must be 1-255"),
    ("tile/0/000.p/256", 400, "partial tile width must be 1-255"),
    ("tile/0/000.p/05", 400, "partial tile width must be 1-255"),
    ("tile/0/000.p/", 400, "partial tile width must be 1-255"),
    ("tile/entries/abc", 400, "tile index must be 3-digit groups, all but the last prefixed 'x'"),
    ("tile/0/001", 404, "tile tile/0/001 is beyond the tree"),
    ("tile/0/002.p/5", 404, "tile tile/0/002.p/5 is beyond the tree"),
    ("tile/6/000", 404, "tile tile/6/000 is beyond the tree"),
    ("tile/entries/999.p/5", 404, "entry bundle tile/entries/999.p/5 is beyond the tree"),
    ("tile/0/" + FAR, 404, "tile index 999999999999999999999999999000 is beyond any log's size"),
]


@pytest.mark.parametrize(("path", "status", "message"), TLOG_REFUSED)
async def test_tlog_tile_refusals(
    rekor: httpx.AsyncClient, path: str, status: int, message: str
) -> None:
    r = await _both_methods(rekor, f"/rekor/{path}")
    assert r.status_code == status
    assert r.json() == {"code": status, "message": message}


async def test_static_ct_tiles_served(ct: httpx.AsyncClient) -> None:
    note = await _both_methods(ct, "/checkpoint")
    assert (note.status_code, note.headers["content-type"]) == (200, NOTE)
    assert note.headers["cache-control"] == "no-cache"
    assert note.content.startswith(b"localhost/ctlog\n2\n")
    for path, length in {"/tile/0/000.p/2": 64, "/tile/0/000.p/1": 32}.items():
        r = await _both_methods(ct, path)
        assert r.status_code == 200
        # static-ct-api: a partial tile never changes either, so it is cached like a full one
        assert (r.headers["content-type"], r.headers["cache-control"]) == (OCTETS, IMMUTABLE)
        assert len(r.content) == length
    data = await _both_methods(ct, "/tile/data/000.p/2")
    assert data.status_code == 200
    assert (data.headers["content-type"], data.headers["cache-control"]) == (OCTETS, IMMUTABLE)
    assert data.content == b"keyless-seed-0keyless-seed-1"  # TileLeafs, no length prefixes


CT_REFUSED = [
    ("0/000", "tile tile/0/000 is beyond the tree"),
    ("1/000", "tile tile/1/000 is beyond the tree"),
    ("data/000", "entry bundle tile/entries/000 is beyond the tree"),
    ("0/" + FAR, "tile index 999999999999999999999999999000 is beyond any log's size"),
    ("6/000", "no such tile path '6/000'"),
    ("63/000", "no such tile path '63/000'"),
    ("entries/000", "no such tile path 'entries/000'"),
    ("0/0", "no such tile path '0/0'"),
    ("0/x000/001", "no such tile path '0/x000/001'"),
    ("data/abc", "no such tile path 'data/abc'"),
    ("0/x\u0660\u0660\u0661/000", "no such tile path '0/x\u0660\u0660\u0661/000'"),
    ("", "no such tile path ''"),
    ("0/000.p/0", "tile width must be 1..255 in '0/000.p/0'"),
    ("0/000.p/256", "tile width must be 1..255 in '0/000.p/256'"),
    ("0/000.p/05", "tile width must be 1..255 in '0/000.p/05'"),
]


@pytest.mark.parametrize(("path", "message"), CT_REFUSED)
async def test_static_ct_tile_refusals(ct: httpx.AsyncClient, path: str, message: str) -> None:
    r = await _both_methods(ct, "/tile/" + path)
    assert r.status_code == 404
    assert r.json() == {"code": 404, "message": message}
@pytest.mark.parametrize("path", ["/rekor/tile/0/" + HUGE, "/rekor/tile/entries/" + HUGE])
async def test_tlog_huge_tile_index_is_404_not_500(rekor: httpx.AsyncClient, path: str) -> None:
    r = await _both_methods(rekor, path)
    assert r.status_code == 404
    assert "beyond any log's size" in r.json()["message"]


@pytest.mark.parametrize("path", ["/tile/0/" + HUGE, "/tile/data/" + HUGE])
async def test_static_ct_huge_tile_index_is_404_not_500(ct: httpx.AsyncClient, path: str) -> None:
    r = await _both_methods(ct, path)
    assert r.status_code == 404
    assert "beyond" in r.json()["message"]


@pytest.mark.parametrize(
    ("api", "path", "expected"),
    [
        (STATIC_CT, "0/000", (0, 0, None)),
        (STATIC_CT, "1/x001/x234/067", (1, 1234067, None)),
        (STATIC_CT, "data/005.p/17", (None, 5, 17)),
        (TLOG_TILES, "63/x001/000", (63, 1000, None)),
        (TLOG_TILES, "entries/005.p/17", (None, 5, 17)),
    ],
)
def test_parse_tile_url(
    api: TileApi, path: str, expected: tuple[int | None, int, int | None]
) -> None:
    assert parse_tile_url(api, path) == expected


@pytest.mark.parametrize("path", ["6/000", "0/0", "0/000.p/0", "0/000.p/256", "0/x000/001",
                                  "0/000.p/05", "data/abc", "entries/000", "0/000\n"])
def test_static_ct_refuses_with_404(path: str) -> None:
    with pytest.raises(NotFound):
        parse_tile_url(STATIC_CT, path)


@pytest.mark.parametrize("path", ["64/000", "data/000", "0/000\n", "0/000.p/5\n", "0/x000/001"])
def test_tlog_tiles_refuses_with_400(path: str) -> None:
    with pytest.raises(InvalidInput):
        parse_tile_url(TLOG_TILES, path)
