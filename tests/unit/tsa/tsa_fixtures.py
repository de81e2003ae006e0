"""Fixtures of the TSA unit tests: generated credentials and a fake SNTP server on 127.0.0.1.

Imported by the test modules (not a conftest.py: a second ``conftest`` module would shadow
tests/conftest.py for the ``from conftest import …`` used across the suite).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keyless.services.tsa import TsaCredentials, load_or_create_credentials

NTP_UNIX_DELTA = 2_208_988_800


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> TsaCredentials:
    """A TSA root + leaf generated once per test module."""
    return load_or_create_credentials(tmp_path_factory.mktemp("tsa"))


@dataclass
class FakeNtp:
    """Behaviour of the fake server; tests change the fields while it runs."""

    offset: float = 0.0  # seconds added to the local clock in the answers
    stratum: int = 2
    leap: int = 0
    mode: int = 4
    echo_origin: bool = True
    silent: bool = False
    port: int = 0
    queries: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def _ntp_stamp(t: float) -> bytes:
    seconds = int(t) + NTP_UNIX_DELTA
    fraction = int((t % 1) * 2**32)
    return struct.pack("!II", seconds, fraction)


@pytest.fixture
def fake_ntp() -> Iterator[FakeNtp]:
    """An SNTP server (RFC 4330 §5) on a free 127.0.0.1 UDP port, answering with a set offset."""
    state = FakeNtp()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    state.port = sock.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            state.queries += 1
            if state.silent or len(data) < 48:
                continue
            now = time.time() + state.offset
            origin = data[40:48] if state.echo_origin else b"\x01" * 8
            first = (state.leap << 6) | (4 << 3) | state.mode
            reply = (
                struct.pack("!BBbb", first, state.stratum, 6, -20)
                + bytes(8)  # root delay, root dispersion
                + b"FAKE"  # reference id
                + _ntp_stamp(now)  # reference timestamp
                + origin
                + _ntp_stamp(now)  # receive
                + _ntp_stamp(now)  # transmit
            )
            sock.sendto(reply, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join(2)
        sock.close()


@pytest.fixture
def tsa_dir(tmp_path: Path) -> Path:
    """A fresh, empty credentials directory."""
    return tmp_path / "tsa"
