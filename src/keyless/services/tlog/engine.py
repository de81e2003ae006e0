"""What the transparency-log service needs from the log engine and storage (docs/internal-apis.md).

The log seam itself (:class:`LogEngine`, :class:`AddResultLike`, :class:`StoredEntryLike`) is
defined once in :mod:`keyless.log.seam`, shared with the CT personality, and re-exported here;
this module adds the one storage seam only the Rekor personalities use, ``storage.search_index``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from keyless.log.seam import AddResultLike, LogEngine, StoredEntryLike


class SearchIndexStore(Protocol):
    """``storage.search_index``: key → log indexes, per log name."""

    async def add(self, log_name: str, key: str, index: int) -> None: ...
    async def add_many(self, log_name: str, items: Sequence[tuple[str, int]]) -> None: ...
    async def lookup(self, log_name: str, key: str) -> Sequence[int]: ...


__all__ = ["AddResultLike", "LogEngine", "SearchIndexStore", "StoredEntryLike"]
