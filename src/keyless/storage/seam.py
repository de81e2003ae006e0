"""The side stores as the services see them: ``storage.kv`` and ``storage.search_index``.

Declared here once (docs/internal-apis.md) and satisfied by the async faces of
:class:`keyless.storage.Storage` (:class:`~keyless.storage.AsyncKeyValueStore`,
:class:`~keyless.storage.AsyncSearchIndex`) and by small in-memory stand-ins.
The log itself is :mod:`keyless.log.seam`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

#: ``expires_at`` of a ``storage.kv`` value that never expires
NEVER = 2.0**62


class KeyValue(Protocol):
    """``storage.kv``: small byte values with an expiry under (namespace, key) — issuer
    certificates, token-replay guard, OIDC codes and keys, TUF metadata, indexer watermarks.
    ``put_if_absent`` is the one atomic primitive (insert, or return what is already there)."""

    async def put_if_absent(
        self, namespace: str, key: str, value: bytes, expires_at: float
    ) -> bytes | None:
        """Store ``value`` unless a live value exists: ``None`` if stored, else the live value."""
        ...

    async def get(self, namespace: str, key: str) -> bytes | None:
        """The live value, or ``None`` if absent or expired."""
        ...

    async def delete(self, namespace: str, key: str) -> None:
        """Forget the value (no error if absent)."""
        ...


class EventWindows(Protocol):
    """``storage.kv``'s event counts in a sliding window, shared by every process of the store
    (the OIDC sign-in throttle). An event is a name recorded under one or more keys at a time
    ``now`` chosen by the caller; it counts for ``window`` seconds and is pruned afterwards."""

    async def reserve_event(
        self,
        namespace: str,
        limits: Sequence[tuple[str, int]],
        event: str,
        now: float,
        window: float,
    ) -> tuple[str, float] | None:
        """Atomically: unless some ``(key, limit)`` of ``limits`` already has ``limit`` events
        later than ``now - window``, record ``event`` at ``now`` under every key and return
        ``None``; else record nothing and return the first such key and the time of its oldest
        event in the window."""
        ...

    async def withdraw_event(
        self, namespace: str, event: str, keys: Sequence[str], clear: Sequence[str] = ()
    ) -> None:
        """Atomically remove ``event`` from ``keys`` and every event of the keys in ``clear``."""
        ...


class SharedKeyValue(KeyValue, EventWindows, Protocol):
    """``storage.kv`` as a whole: expiring values and event windows."""


class SearchIndexStore(Protocol):
    """``storage.search_index``: string key → entry indexes, per log name."""

    async def add(self, log_name: str, key: str, index: int) -> None: ...
    async def add_many(self, log_name: str, items: Sequence[tuple[str, int]]) -> None: ...
    async def lookup(self, log_name: str, key: str) -> Sequence[int]: ...


__all__ = ["NEVER", "EventWindows", "KeyValue", "SearchIndexStore", "SharedKeyValue"]
