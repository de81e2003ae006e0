"""The small shared key-value store the provider keeps codes and keys in, in memory.

The provider uses the ``storage.kv`` seam of docs/internal-apis.md
(:class:`keyless.storage.seam.KeyValue`): ``put_if_absent`` is the one atomic primitive (insert,
or return what is already there), which is enough for single-use authorization codes,
device-code approval and coordination-free key rotation between several processes sharing one
database. Its event windows (:class:`keyless.storage.seam.EventWindows`) hold the sign-in
throttle's counts. :class:`MemoryKV` implements both for a single process (tests, a provider
built without storage); with it, codes, keys and throttle counts are not shared between
processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from keyless.storage.memory import MemoryEvents


class MemoryKV:
    """A :class:`~keyless.storage.seam.KeyValue` in this process's memory (expired values are
    swept lazily)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._data: dict[tuple[str, str], tuple[bytes, float]] = {}
        self._lock = asyncio.Lock()
        self._puts = 0
        self._events = MemoryEvents()

    async def put_if_absent(
        self, namespace: str, key: str, value: bytes, expires_at: float
    ) -> bytes | None:
        async with self._lock:
            now = self._clock()
            self._puts += 1
            if self._puts % 1024 == 0:
                self._data = {k: v for k, v in self._data.items() if v[1] > now}
            existing = self._data.get((namespace, key))
            if existing is not None and existing[1] > now:
                return existing[0]
            self._data[(namespace, key)] = (value, expires_at)
            return None

    async def get(self, namespace: str, key: str) -> bytes | None:
        existing = self._data.get((namespace, key))
        if existing is None or existing[1] <= self._clock():
            return None
        return existing[0]

    async def delete(self, namespace: str, key: str) -> None:
        self._data.pop((namespace, key), None)

    async def reserve_event(
        self,
        namespace: str,
        limits: Sequence[tuple[str, int]],
        event: str,
        now: float,
        window: float,
    ) -> tuple[str, float] | None:
        return self._events.reserve(namespace, limits, event, now, window)

    async def withdraw_event(
        self, namespace: str, event: str, keys: Sequence[str], clear: Sequence[str] = ()
    ) -> None:
        self._events.withdraw(namespace, event, keys, clear)
