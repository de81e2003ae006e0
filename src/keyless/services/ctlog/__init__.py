"""The certificate transparency log personality (RFC 6962 + C2SP static-ct-api read path).

:class:`CTLogService` (framework-free) over the log engine (:mod:`keyless.log.seam`) and
``storage.kv`` (:mod:`keyless.storage.seam`); :func:`keyless.services.ctlog.routes.routes` gives
its HTTP routes.
"""

from __future__ import annotations

from keyless.services.ctlog.service import CTLogService, LoggedEntry, SignedTreeHead

__all__ = ["CTLogService", "LoggedEntry", "SignedTreeHead"]
