"""The log engine: one engine for the CT log and both Rekor logs (architecture.md "Layers")."""

from keyless.log.engine import AddResult, SeedEntry, TransparencyLog
from keyless.log.seam import AddResultLike, EntryAtIndex, LogEngine, LogReader, StoredEntryLike
from keyless.storage.model import LogHead, StoredEntry

__all__ = [
    "AddResult",
    "AddResultLike",
    "EntryAtIndex",
    "LogEngine",
    "LogHead",
    "LogReader",
    "SeedEntry",
    "StoredEntry",
    "StoredEntryLike",
    "TransparencyLog",
]
