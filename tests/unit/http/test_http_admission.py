"""Bounded admission (:mod:`keyless.http.admission`): beyond its bounds a process answers 503 +
Retry-After at once, with the JSON error body, and admits again as soon as work finishes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from asgi_support import call
from starlette.types import Message, Receive, Scope, Send

from keyless.errors import ConfigError
from keyless.http.admission import Admission
from keyless.http.errors import EXCEPTION_HANDLERS
from keyless.http.front import FrontMiddleware
from keyless.http.metrics import Metrics
from keyless.http.requests import DEFAULT_MAX_BODY
from keyless.server.config import load_settings


class Held:
    """An inner app whose requests stay in flight until released (no sleeps)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0
        self.arrived = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.entered += 1
        self.arrived.set()
        if scope["path"] == "/boom":
            raise RuntimeError("boom")
        await self.release.wait()
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _scope(path: str = "/rekor/api/v2/log/entries", headers: list[tuple[bytes, bytes]] | None
           = None) -> Scope:
    return {"type": "http", "method": "POST", "path": path, "headers": headers or [],
            "query_string": b"", "client": ("192.0.2.1", 1)}


async def _enter(held: Held, app: Any, scope: Scope) -> asyncio.Task[Any]:
    """Start a request and return once the inner app holds it."""
    held.arrived.clear()
    task = asyncio.create_task(call(app, scope))
    await held.arrived.wait()
    return task


def _admitting(inner: Any, **bounds: Any) -> FrontMiddleware:
    """``inner`` behind the stack's front layer, whose :class:`Admission` has ``bounds``."""
    return FrontMiddleware(inner, metrics=Metrics(), admission=Admission(**bounds),
                           handlers=EXCEPTION_HANDLERS)


def _assert_busy(answer: tuple[int, dict[str, str], bytes], what: str) -> None:
    status, headers, body = answer
    assert status == 503
    assert headers["retry-after"] == "1"
    assert headers["content-type"] == "application/json"
    message = json.loads(body)
    assert message["code"] == 503
    assert "busy" in message["message"] and what in message["message"], message


async def test_requests_beyond_the_bound_are_refused_at_once_and_admitted_after() -> None:
    held = Held()
    refused: list[str] = []
    app = _admitting(held, max_requests=2, on_refused=refused.append)
    first = await _enter(held, app, _scope())
    second = await _enter(held, app, _scope())
    _assert_busy(await call(app, _scope()), "2 writes")
    assert held.entered == 2 and refused == ["/rekor/api/v2/log/entries"]
    for path in ("/healthz", "/metrics"):  # probes and scrapes are always answered
        await _enter(held, app, _scope(path))
    held.release.set()
    assert (await first)[0] == 201 and (await second)[0] == 201
    assert app.admission.writes == 0
    assert (await call(app, _scope()))[0] == 201


async def test_reads_and_writes_are_bounded_apart() -> None:
    """Writes held up (a log waiting for its storage) must not lock out reads, nor the reverse."""
    held = Held()
    app = _admitting(held, max_requests=1)
    write = await _enter(held, app, _scope())
    read = await _enter(held, app, {**_scope("/rekor/checkpoint"), "method": "GET"})
    assert (app.admission.reads, app.admission.writes) == (1, 1)
    _assert_busy(await call(app, {**_scope("/rekor/checkpoint"), "method": "HEAD"}), "1 reads")
    _assert_busy(await call(app, _scope()), "1 writes")
    held.release.set()
    await asyncio.gather(write, read)
    assert (app.admission.reads, app.admission.writes) == (0, 0)


async def test_declared_body_bytes_are_bounded() -> None:
    held = Held()
    app = _admitting(held, max_requests=100, max_body_bytes=1000)
    length = [(b"content-length", b"600")]
    first = await _enter(held, app, _scope(headers=length))
    _assert_busy(await call(app, _scope(headers=length)), "1000 bytes")
    small = await _enter(held, app, _scope(headers=[(b"content-length", b"400")]))
    assert app.admission.body_bytes == 1000
    await _enter(held, app, _scope(path="/rekor/log/x"))  # no body: still admitted
    held.release.set()
    await asyncio.gather(first, small)
    assert app.admission.body_bytes == 0


async def test_a_body_larger_than_the_bound_is_admitted_alone() -> None:
    held = Held()
    held.release.set()
    app = _admitting(held, max_body_bytes=1000)
    assert (await call(app, _scope(headers=[(b"content-length", b"5000")])))[0] == 201
    # a huge declared length is charged as the largest body any reader accepts
    huge = [(b"content-length", b"9" * 30)]
    held.release.clear()
    task = await _enter(held, _admitting(held), _scope(headers=huge))
    held.release.set()
    await task


async def test_a_body_of_unknown_length_counts_as_the_largest_body() -> None:
    held = Held()
    app = _admitting(held, max_body_bytes=DEFAULT_MAX_BODY + 10)
    chunked = [(b"transfer-encoding", b"chunked")]
    task = await _enter(held, app, _scope(headers=chunked))
    assert app.admission.body_bytes == DEFAULT_MAX_BODY
    _assert_busy(await call(app, _scope(headers=[(b"content-length", b"11")])), "bytes")
    held.release.set()
    await task


async def test_a_refused_body_is_read_before_the_answer() -> None:
    """Closing with unread bytes makes the kernel reset the connection, which can destroy the
    503 before the client reads it: the body is drained first (Expect: 100-continue excepted)."""
    held = Held()
    app = _admitting(held, max_requests=1)
    task = await _enter(held, app, _scope())
    chunks = [b"a" * 1000, b"b" * 1000, b""]
    events: list[str] = []

    async def receive() -> Message:
        events.append("receive")
        body = chunks.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def send(message: Message) -> None:
        events.append(message["type"])

    await app(_scope(headers=[(b"content-length", b"2000")]), receive, send)
    assert events == ["receive"] * 3 + ["http.response.start", "http.response.body"]
    events.clear()
    expecting = [(b"content-length", b"2000"), (b"expect", b"100-continue")]
    await app(_scope(headers=expecting), receive, send)
    assert events == ["http.response.start", "http.response.body"]  # the body was never asked
    held.release.set()
    await task


async def test_a_failing_request_gives_its_place_back() -> None:
    held = Held()
    app = _admitting(held, max_requests=1, max_body_bytes=10)
    assert (await call(app, _scope("/boom", [(b"content-length", b"5")])))[0] == 500
    assert (app.admission.writes, app.admission.body_bytes) == (0, 0)


async def test_zero_switches_a_bound_off() -> None:
    held = Held()
    app = _admitting(held, max_requests=0, max_body_bytes=0)
    tasks = [await _enter(held, app, _scope(headers=[(b"content-length", b"4000000")]))
             for _ in range(50)]
    held.release.set()
    assert {(await t)[0] for t in tasks} == {201}
    with pytest.raises(ValueError, match="negative"):
        Admission(max_requests=-1)


async def test_refusals_are_counted_by_service() -> None:
    metrics = Metrics()
    held = Held()
    app = _admitting(held, max_requests=1, on_refused=metrics.refused_busy)
    task = await _enter(held, app, _scope())
    for path in ("/rekor/api/v2/log/entries", "/api/v1/timestamp"):
        _assert_busy(await call(app, _scope(path)), "1 writes")
    held.release.set()
    await task
    text = metrics.render()
    assert 'keyless_http_busy_requests_total{service="rekor_v2"} 1.0' in text
    assert 'keyless_http_busy_requests_total{service="tsa"} 1.0' in text


def test_the_bounds_are_server_settings(tmp_path: Path) -> None:
    config = tmp_path / "keyless.toml"
    defaults = load_settings(data_dir=tmp_path)
    assert (defaults.max_requests_in_flight, defaults.max_body_bytes_in_flight) == (
        1024, 32 * 1024 * 1024
    )
    config.write_text("[server]\nmax_requests_in_flight = 64\nmax_body_bytes_in_flight = 0\n")
    settings = load_settings(config_file=config, data_dir=tmp_path)
    assert (settings.max_requests_in_flight, settings.max_body_bytes_in_flight) == (64, 0)
    for text in ("max_requests_in_flight = -1", "max_body_bytes_in_flight = -5",
                 "max_requests_in_flight = 1.5"):
        config.write_text(f"[server]\n{text}\n")
        with pytest.raises(ConfigError, match="max_"):
            load_settings(config_file=config, data_dir=tmp_path)
