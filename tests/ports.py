"""Listen ports for servers that tests start as separate processes, free of races under xdist.

A port found free by binding port 0 and closing the socket can be taken before the server binds
it: by another worker's server handed the same number, or by an outgoing connection, which the
kernel gives a port of the ephemeral range. So these ports come from just below the ephemeral
range (the kernel hands none of them out by itself), and each is claimed machine-wide, for the
life of the test process, by an exclusive lock on a file named after it — the kernel releases
the lock when the process ends, even when it is killed. A test that can hand the server a bound
socket does that instead (no port number travels at all).
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
from pathlib import Path

LOCKS = Path(tempfile.gettempdir()) / f"keyless-test-ports-{os.getuid()}"
#: how many ports below the ephemeral range are used
SPAN = 8000
#: descriptors of the lock files this process holds (open until it exits)
_held: list[int] = []


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def reserve_port() -> int:
    """A 127.0.0.1 TCP port that no other test process on this machine is given."""
    high = _ephemeral_low()
    low = max(1024, high - SPAN)
    LOCKS.mkdir(mode=0o700, exist_ok=True)
    pick = random.SystemRandom()
    for _ in range(1000):
        port = pick.randrange(low, high)
        fd = os.open(LOCKS / f"{port}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another test process (or this one) has it
            os.close(fd)
            continue
        if not _bindable(port):  # something outside the tests listens there
            os.close(fd)
            continue
        _held.append(fd)
        return port
    raise RuntimeError(f"no free port in {low}..{high - 1}")
