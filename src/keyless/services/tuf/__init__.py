"""The TUF repository that distributes the trusted root and signing config (protocols.md §10).

Mount ``keyless.services.tuf.routes.routes(TufService(repository))`` at ``P/tuf``.
"""

from keyless.services.tuf.repository import Expiry, TufRepository
from keyless.services.tuf.service import TufService
from keyless.services.tuf.store import FileMetadataStore, KvMetadataStore, MemoryMetadataStore

__all__ = [
    "Expiry",
    "FileMetadataStore",
    "KvMetadataStore",
    "MemoryMetadataStore",
    "TufRepository",
    "TufService",
]
