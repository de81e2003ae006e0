"""Real local sockets that misbehave the way a broken network does, and a ``sitecustomize`` that
records (and refuses) every network call a child Python process attempts.

Used to prove the client's network behaviour without internet: a server that accepts and never
answers (a hung CDN), one that answers one byte at a time (a trickling link), and an audit hook
(PEP 578) on the socket events, so that "no network call at all" is observed, not assumed.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType

#: PEP 578 audit events that reach the network (name resolution included)
NETWORK_EVENTS = (
    "socket.connect",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyname_ex",
    "socket.gethostbyaddr",
    "socket.sendto",
    "socket.sendmsg",
)

SITECUSTOMIZE = f"""
import os, sys

_EVENTS = {NETWORK_EVENTS!r}
_LOG = os.environ.get("KEYLESS_NET_PROBE_LOG", os.devnull)


def _no_network(event, args):
    if event in _EVENTS:
        with open(_LOG, "a") as log:
            log.write(event + "\\n")
        raise OSError(101, "Network is unreachable (test: no network)")


if os.environ.get("KEYLESS_NET_PROBE_TUF_URL"):
    import keyless.trust.production

    keyless.trust.production.PRODUCTION_TUF_URL = os.environ["KEYLESS_NET_PROBE_TUF_URL"]
else:
    sys.addaudithook(_no_network)
"""


def write_sitecustomize(directory: Path) -> Path:
    """A ``sitecustomize.py`` for ``PYTHONPATH=directory``; returns the log of attempts."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = directory / "network-attempts.log"
    log.write_text("")
    return log


class SilentServer:
    """Accepts TCP connections and never answers; ``trickle`` sends a slow HTTP answer instead
    (headers, then one body byte every ``trickle`` seconds)."""

    def __init__(self, trickle: float | None = None) -> None:
        self.trickle = trickle
        self.accepted = 0
        #: set once a client has connected (a test waits on it instead of sleeping)
        self.connected = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            self.accepted += 1
            self.connected.set()
            self._held.append(conn)
            if self.trickle is not None:
                t = threading.Thread(target=self._drip, args=(conn,), daemon=True)
                t.start()

    def _drip(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            while not self._stop.is_set():
                conn.sendall(b"{")
                time.sleep(self.trickle or 0.1)
        except OSError:
            pass

    def __enter__(self) -> SilentServer:
        self._threads[0].start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._threads[0].join(2)
        for conn in self._held:
            conn.close()
        self._listener.close()
