"""Pieces the HTTP benchmarks share: the lean keep-alive HTTP/1.1 exchange, percentiles, server
CPU time from /proc (one process or a whole process tree), free ports and the load average.

The client side is raw asyncio streams with pre-encoded requests and Content-Length framing: the
load generator shares the 2 cores with the server, so every microsecond it spends is one the
server does not get.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def post_request(path: str, body: bytes, *, host: str = "127.0.0.1",
                 content_type: str = "application/json", headers: str = "") -> bytes:
    """The bytes of one keep-alive ``POST`` (``headers``: extra ``Name: value\\r\\n`` lines)."""
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{headers}\r\n").encode() + body


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   request: bytes) -> tuple[int, bytes]:
    """Send one pre-encoded request on a keep-alive connection; ``(status, body)``."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


async def connect(port: int, host: str = "127.0.0.1"
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A keep-alive connection with Nagle off (no 40 ms delayed-ACK stalls)."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


def percentile_ms(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of seconds ``values``, in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[k] * 1000


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the fields after the command name, which may itself hold spaces and parentheses
    return text.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process and its threads (Linux /proc), in seconds."""
    fields = _stat(pid)
    if fields is None:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and all its descendants, in seconds.

    Each process counts its own time (all threads) plus that of its children that exited and
    were reaped (cutime/cstime); a child that exited and is not reaped yet is still in /proc (a
    zombie keeps its times), so no CPU time is lost or counted twice between two samples.
    """
    children: dict[int, list[int]] = {}
    times: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is None:
            continue
        child = int(entry.name)
        children.setdefault(int(fields[1]), []).append(child)
        times[child] = sum(int(f) for f in fields[11:15])
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0)
        todo.extend(children.get(current, ()))
    return total / CLOCK_TICKS


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of the call."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, for printing beside figures of a shared machine."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
