"""IndexedRouter answers exactly as Starlette's Router does, and its memo stays bounded."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import Receive, Scope, Send

from keyless.server.routing import MEMO_METHODS, IndexedRouter


def _named(name: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(f"{name} {request.path_params}")

    return endpoint


class _AnyMethod:
    """An ASGI endpoint: Starlette gives such routes no method restriction."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse(f"any {scope['method']}")(scope, receive, send)


def _table() -> list[BaseRoute]:
    return [
        Route("/healthz", _named("health"), methods=["GET"]),
        Route("/items/{item}", _named("item"), methods=["GET"]),
        Route("/items/special", _named("special"), methods=["GET", "POST"]),  # shadowed on GET
        Route("/write", _named("write"), methods=["POST"]),
        Route("/asgi", _AnyMethod()),
        Mount("/sub", routes=[Route("/x", _named("sub-x"), methods=["GET"])]),
        Route("/write", _named("write-put"), methods=["PUT"]),  # after a partial match
    ]


async def _call(app: Any, path: str, method: str) -> tuple[int, bytes]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": [], "client": ("127.0.0.1", 1), "server": ("t", 80),
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


REQUESTS = [
    (path, method)
    for path in ["/healthz", "/items/special", "/items/7", "/write", "/asgi", "/sub/x", "/nope",
                 "/healthz/", "/sub"]
    for method in ["GET", "POST", "PUT", "DELETE", "BREW"]
]  # fmt: skip


async def test_every_answer_equals_starlettes_also_from_the_memo() -> None:
    plain, indexed = Router(_table()), IndexedRouter(_table())
    for _ in range(2):  # the second round is answered from the memo
        for path, method in REQUESTS:
            assert await _call(indexed, path, method) == await _call(plain, path, method), (
                path, method,
            )  # fmt: skip
    assert await _call(indexed, "/items/special", "GET") == (200, b"item {'item': 'special'}")
    assert await _call(indexed, "/items/special", "POST") == (200, b"special {}")
    assert await _call(indexed, "/write", "PUT") == (200, b"write-put {}")
    assert await _call(indexed, "/asgi", "BREW") == (200, b"any BREW")


async def test_the_memo_holds_only_literal_routes_with_standard_methods() -> None:
    router = IndexedRouter(_table())
    for i in range(200):
        await _call(router, f"/items/{i}", "GET")  # parameterised: never remembered
        await _call(router, "/asgi", f"M{i}")  # any method string: not remembered
        await _call(router, f"/unknown/{i}", "GET")
    for path, method in REQUESTS:
        await _call(router, path, method)
    assert set(router._memo) <= {
        ("/healthz", "GET"), ("/items/special", "POST"), ("/write", "POST"), ("/write", "PUT"),
        *(("/asgi", m) for m in MEMO_METHODS),
    }  # fmt: skip
    assert ("/healthz", "GET") in router._memo


async def test_routes_added_later_empty_the_memo() -> None:
    router = IndexedRouter(_table())
    assert await _call(router, "/write", "POST") == (200, b"write {}")
    router.routes.insert(0, Route("/write", _named("first"), methods=["POST"]))
    assert await _call(router, "/write", "POST") == (200, b"first {}")
