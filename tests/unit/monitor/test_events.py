"""Events reach stdout and the webhook; delivery is retried, bounded, and never prints secrets."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from keyless.monitor import events as events_module
from keyless.monitor.events import EventSink
from keyless.monitor.watch import base64_needles


class Hook:
    """A webhook that answers 503 to the first ``failures`` posts, then 204."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.bodies: list[bytes] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.bodies.append(body)
                self.send_response(503 if len(hook.bodies) <= hook.failures else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://user:secret-token@127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def hook(request: pytest.FixtureRequest) -> Iterator[Hook]:
    served = Hook(request.param)
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()


@pytest.mark.parametrize("hook", [2], indirect=True)
def test_webhook_retried_until_delivered(hook: Hook) -> None:
    out = io.StringIO()
    pauses: list[float] = []
    sink = EventSink(out, hook.url, sleep=pauses.append)
    sink.emit({"event": "checkpoint", "log": "x", "size": 3})
    sink.close()
    assert json.loads(out.getvalue()) == {"event": "checkpoint", "log": "x", "size": 3}
    assert [json.loads(b) for b in hook.bodies] == [json.loads(out.getvalue())] * 3
    assert pauses == [0.5, 1.0]


@pytest.mark.parametrize("hook", [100], indirect=True)
def test_webhook_gives_up_after_bounded_attempts(
    hook: Hook, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = EventSink(io.StringIO(), hook.url, sleep=lambda _s: None)
    sink.emit({"event": "match"})
    sink.close()
    assert len(hook.bodies) == events_module.WEBHOOK_ATTEMPTS
    err = capsys.readouterr().err
    assert "not reached after" in err and "secret-token" not in err


@pytest.mark.parametrize("text", [b"a", b"ab", b"abc", b"alice@example.com",
                                  b"https://issuer.example/oidc"])
def test_base64_needles_find_the_text_at_any_alignment(text: bytes) -> None:
    needles = base64_needles(text)
    for before in range(4):
        for after in range(4):
            encoded = base64.b64encode(os.urandom(before) + text + os.urandom(after))
            assert any(n in encoded for n in needles)
    if len(text) > 6:
        assert not any(n in base64.b64encode(b"bob@example.com" * 3) for n in needles)
