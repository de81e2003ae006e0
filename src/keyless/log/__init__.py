"""The log engine: one engine for the CT log and both Rekor logs (architecture.md "Layers")."""

from keyless.log.engine import AddResult, SeedEntry, TransparencyLog
from keyless.storage.model import LogHead, StoredEntry

__all__ = ["AddResult", "LogHead", "SeedEntry", "StoredEntry", "TransparencyLog"]
