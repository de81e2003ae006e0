"""What every browser test shares: Debian's Chromium with the flags this closed network needs, and
a loopback redirect target for OAuth flows."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
#: headless, and no background connections (this machine's network refuses them)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def callback_listener() -> Iterator[tuple[str, list[str]]]:
    """A loopback redirect target like sigstore-python's (RFC 8252 §7.3); records queries."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"signed in; you may close this window")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/auth/callback", seen
    finally:
        server.shutdown()
        server.server_close()
