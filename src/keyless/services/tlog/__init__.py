"""The signature transparency log: Rekor v2 (rekor-tiles) and Rekor v1 compatible APIs.

Public API (docs/internal-apis.md; wiring in keyless.server.wiring):

* :class:`RekorV2Service` ``(log, *, log_id, log_name="rekor-v2", search_index, kv, limits)`` —
  ``POST /api/v2/log/entries``, C2SP tlog-tiles reads (``/checkpoint``, ``/tile/…``, also under
  ``/api/v2``) and keyless search ``GET /api/v2/search``; routes relative to ``P/rekor``.
* :class:`RekorV1Service` ``(log, *, signer, tree_id, log_name="rekor-v1", search_index, kv,
  limits)`` — the Rekor v1 openapi subset clients use plus ``POST /api/v1/index/retrieve`` and
  keyless search ``GET /api/v1/search``; routes relative to the port root.
* :class:`TlogLimits` — body / entry size limits (413 naming the limit).
* :func:`ed25519_log_id` — the Rekor v2 log ID of an Ed25519 log (interop.md §5 gotcha 9).

Both services need ``await start()`` / ``await close()`` (background search indexing). Their HTTP
routes are :func:`keyless.services.tlog.routes.routes` ``(service, budget=None)``, relative to the
service's base URL.
"""

from keyless.services.tlog.limits import TlogLimits
from keyless.services.tlog.service import RekorV1Service, RekorV2Service, ed25519_log_id

__all__ = ["RekorV1Service", "RekorV2Service", "TlogLimits", "ed25519_log_id"]
