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


class SearchIndexStore(Protocol):
    """``storage.search_index``: string key → entry indexes, per log name."""

    async def add(self, log_name: str, key: str, index: int) -> None: ...
    async def add_many(self, log_name: str, items: Sequence[tuple[str, int]]) -> None: ...
    async def lookup(self, log_name: str, key: str) -> Sequence[int]: ...


__all__ = ["NEVER", "KeyValue", "SearchIndexStore"]
