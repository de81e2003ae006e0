"""The certificate transparency log personality (RFC 6962 + C2SP static-ct-api read path)."""

from __future__ import annotations

from keyless.services.ctlog.backend import KeyValue, LogEngine, MemoryKeyValue, MemoryLogEngine
from keyless.services.ctlog.routes import CTLogRoutes
from keyless.services.ctlog.service import CTLogService, LoggedEntry, SignedTreeHead

__all__ = [
    "CTLogRoutes",
    "CTLogService",
    "KeyValue",
    "LogEngine",
    "LoggedEntry",
    "MemoryKeyValue",
    "MemoryLogEngine",
    "SignedTreeHead",
]
