"""The stack's front layer (:mod:`keyless.http.front`) and the answers the uvicorn protocol of
:mod:`keyless.http.errors` writes: every request is counted, logged and answered in JSON
whatever its app raises, and an answer's head and body leave in one write."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from asgi_support import call
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.server import ServerState

from keyless import errors
from keyless.http.admission import Admission
from keyless.http.errors import EXCEPTION_HANDLERS
from keyless.http.front import FrontMiddleware
from keyless.http.metrics import Metrics
from keyless.http.protocol import HeldWrites, json_error_http_protocol


def _scope(path: str = "/api/v1/timestamp", method: str = "POST") -> Scope:
    return {"type": "http", "method": method, "path": path, "headers": [], "query_string": b"",
            "client": ("192.0.2.1", 1), "root_path": ""}


def _front(inner: Any, metrics: Metrics, **bounds: int) -> FrontMiddleware:
    admission = Admission(on_refused=metrics.refused_busy, **bounds)
    return FrontMiddleware(inner, metrics=metrics, admission=admission,
                           handlers=EXCEPTION_HANDLERS)


def _count(metrics: Metrics, service: str, status: str) -> float | None:
    return metrics.registry.get_sample_value(
        "keyless_http_requests_total", {"service": service, "method": "POST", "status": status})


def _raising(exc: Exception) -> Any:
    async def app(_scope: Scope, _receive: Receive, _send: Send) -> None:
        raise exc

    return app


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (errors.NotFound("no such entry"), 404, "no such entry"),
        (errors.Pushback("slow down", retry_after=3), 503, "slow down"),
        (HTTPException(405, headers={"Allow": "GET, HEAD"}), 405,
         "method POST is not allowed on /api/v1/timestamp; use GET"),
        (RuntimeError("secret internal detail"), 500, "internal server error"),
    ],
)
async def test_what_an_app_raises_is_answered_in_json_counted_and_logged(
    exc: Exception, status: int, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    with caplog.at_level(logging.INFO, "keyless.access"):
        got, headers, body = await call(_front(_raising(exc), metrics), _scope())
    assert (got, json.loads(body)) == (status, {"code": status, "message": message})
    assert headers["content-type"] == "application/json"
    if status == 503:
        assert headers["retry-after"] == "3"
    assert _count(metrics, "tsa", f"{status // 100}xx") == 1.0
    assert metrics.in_flight == 0 and metrics.writes_in_flight == 0
    assert [r.getMessage() for r in caplog.records if r.name == "keyless.access"] == [
        f"POST /api/v1/timestamp {status}"
    ]


async def test_an_exception_after_the_answer_started_is_raised_to_the_server() -> None:
    async def app(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("half an answer")

    metrics = Metrics()
    with pytest.raises(RuntimeError, match="half an answer"):
        await call(_front(app, metrics), _scope())
    assert _count(metrics, "tsa", "2xx") == 1.0 and metrics.in_flight == 0


async def test_routes_get_the_error_handlers_but_not_the_catch_all() -> None:
    seen: list[Any] = []

    async def app(scope: Scope, _receive: Receive, send: Send) -> None:
        seen.append(scope["starlette.exception_handlers"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await call(_front(app, Metrics()), _scope())
    by_class, by_status = seen[0]
    assert by_class[errors.Error] is EXCEPTION_HANDLERS[errors.Error]
    assert by_class[HTTPException] is EXCEPTION_HANDLERS[HTTPException]
    assert Exception not in by_class and by_status == {}


async def test_a_refused_request_is_counted_and_the_admitted_ones_released() -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def app(_scope: Scope, _receive: Receive, send: Send) -> None:
        entered.set()
        await release.wait()
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    metrics = Metrics()
    front = _front(app, metrics, max_requests=1)
    first = asyncio.create_task(call(front, _scope()))
    await entered.wait()
    status, headers, _ = await call(front, _scope())
    assert (status, headers["retry-after"]) == (503, "1")
    assert metrics.registry.get_sample_value(
        "keyless_http_busy_requests_total", {"service": "tsa"}) == 1.0
    release.set()
    assert (await first)[0] == 201
    assert front.admission.writes == 0 and metrics.writes_in_flight == 0
    assert _count(metrics, "tsa", "5xx") == 1.0 and _count(metrics, "tsa", "2xx") == 1.0


async def test_lifespan_passes_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, _receive: Receive, _send: Send) -> None:
        seen.append(scope["type"])

    metrics = Metrics()
    await _front(app, metrics)({"type": "lifespan"}, _no_receive, _no_send)
    assert seen == ["lifespan"] and _count(metrics, "other", "5xx") is None


async def _no_receive() -> Message:
    raise AssertionError("not called")


async def _no_send(_message: Message) -> None:
    raise AssertionError("not called")


class _Transport(asyncio.Transport):
    """Records every write (a socket would send each one as its own segment)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("192.0.2.1", 1), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _Timers:
    """The event loop as the protocol sees it, recording what it asks ``call_later`` for."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.asked: list[Any] = []

    def call_later(self, delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        self.asked.append(callback)
        return self.loop.call_later(delay, callback, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loop, name)


async def _serve(app: Any, *requests: bytes, timers: _Timers | None = None) -> _Transport:
    """Feed requests (one read each) to the stack's uvicorn protocol and wait for the answers."""
    config = Config(app, log_config=None, access_log=False, lifespan="off", ws="none")
    config.load()
    loop = timers or asyncio.get_running_loop()
    protocol = json_error_http_protocol()(config, ServerState(), app_state={}, _loop=loop)
    transport = _Transport()
    protocol.connection_made(transport)
    for request in requests:
        protocol.data_received(request)
        await asyncio.gather(*protocol.tasks)
    protocol.connection_lost(None)
    return transport


async def test_a_head_that_arrives_whole_sets_no_deadline() -> None:
    """The head deadline costs a timer only when a head arrives in pieces (a slow client)."""
    async def app(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    timers = _Timers(asyncio.get_running_loop())
    head = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
    transport = await _serve(app, head, head, head[:10], head[10:], timers=timers)
    assert [t.startswith(b"HTTP/1.1 204") for t in transport.writes] == [True, True, True]
    deadlines = [c for c in timers.asked if getattr(c, "__name__", "") == "_head_timed_out"]
    # one for the connection (it may never send anything), one for the head sent in two reads
    assert len(deadlines) == 2


async def test_an_answer_is_written_whole_in_one_write() -> None:
    async def app(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    transport = await _serve(app, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\nok")


async def test_a_head_whose_app_fails_is_still_written_before_the_close() -> None:
    async def app(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        raise RuntimeError("no body after all")

    transport = await _serve(app, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    assert transport.closed
    assert len(transport.writes) == 1 and transport.writes[0].startswith(b"HTTP/1.1 200 OK")


def test_held_writes_go_out_in_order_once() -> None:
    transport = _Transport()
    held = HeldWrites(transport)
    held.write(b"a")
    held.hold()
    held.write(b"b")
    held.write(b"c")
    assert transport.writes == [b"a"]
    held.flush()
    held.flush()
    held.write(b"d")
    assert transport.writes == [b"a", b"bc", b"d"]
    held.hold()
    held.write(b"e")
    held.close()
    assert transport.writes[-1] == b"e" and transport.closed
