"""Failed-login throttling (OWASP ASVS V2.2.1: anti-automation against credential stuffing).

Counts failures per key (the username and the client address, separately) in a sliding window;
once ``max_failures`` are reached, further attempts are refused until the oldest failure leaves
the window. State is per process: behind a load balancer each process throttles on its own, so
the effective limit is multiplied by the number of processes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from keyless.errors import Pushback


class LoginLimiter:
    """Sliding-window failure counter; :meth:`check` raises :class:`Pushback` when exhausted."""

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 300.0,
        clock: Callable[[], float] = time.time,
        max_keys: int = 100_000,
        message: str = "too many failed logins; try again later",
    ) -> None:
        self._message = message
        self._max = max_failures
        self._window = window
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _live(self, key: str) -> deque[float]:
        now = self._clock()
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def check(self, *keys: str) -> None:
        """Refuse (retry-after in seconds) if any key has too many recent failures."""
        for key in keys:
            times = self._live(key)
            if len(times) >= self._max:
                retry = times[0] + self._window - self._clock()
                raise Pushback(self._message, retry_after=max(1.0, retry))

    def failure(self, *keys: str) -> None:
        """Record one failed attempt against every key."""
        if len(self._failures) >= self._max_keys:
            for key in list(self._failures):
                self._live(key)
        for key in keys:
            times = self._live(key)
            times.append(self._clock())
            self._failures[key] = times

    def success(self, key: str) -> None:
        """Forget the failures of ``key`` (a user who logged in)."""
        self._failures.pop(key, None)
