"""``keyless verify --output json``: what a verification established, as one JSON object.

::

    {"artifact": "app.tar.gz", "sha256": "<hex of the verified artifact>",
     "identity": "alice@example.com", "identities": [...], "issuer": "https://…",
     "signed_at": "2026-…Z",
     "verified_times": ["2026-…Z", …], "certificate": {"serial": "…", "not_before": …,
     "not_after": …} | null, "log_entries": [{"log_index": 12, "log_id": "<hex>",
     "kind": "hashedrekord", "version": "0.0.1", "integrated_time": "2026-…Z" | null,
     "inclusion_proof": true, "inclusion_promise": false}], "bundle_media_type": "…",
     "predicate_type": "…" | null, "statement": {…} | null}

``identity``/``issuer``/``certificate`` are null for a managed-key bundle; ``statement`` and
``predicate_type`` are null for a message signature. Times are RFC 3339 UTC. Only a successful
verification prints this; a failure prints nothing on stdout.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

__all__ = ["verification_json", "verification_report"]


def _time(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def verification_report(artifact: str, sha256: bytes, result: Any) -> dict[str, Any]:
    """The report of a :class:`keyless.verify.VerificationResult` (see the module docstring)."""
    from keyless.verify.policy import certificate_identities

    cert = result.certificate
    entries = []
    for e in result.log_entries:
        entries.append(
            {
                "log_index": e.log_index,
                "log_id": e.log_id.hex(),
                "kind": e.kind,
                "version": e.version,
                "integrated_time": (
                    _time(datetime.fromtimestamp(e.integrated_time, UTC))
                    if e.integrated_time > 0
                    else None
                ),
                "inclusion_proof": e.inclusion_proof is not None,
                "inclusion_promise": e.inclusion_promise is not None,
            }
        )
    return {
        "artifact": artifact,
        "sha256": sha256.hex(),
        "identity": result.identity,
        "identities": certificate_identities(cert) if cert is not None else [],
        "issuer": result.issuer,
        "signed_at": _time(result.signed_at),
        "verified_times": [_time(t) for t in sorted(result.verified_times)],
        "certificate": None
        if cert is None
        else {
            "serial": format(cert.serial_number, "x"),
            "not_before": _time(cert.not_valid_before_utc),
            "not_after": _time(cert.not_valid_after_utc),
        },
        "log_entries": entries,
        "bundle_media_type": result.bundle.media_type,
        "predicate_type": result.predicate_type,
        "statement": result.statement,
    }


def verification_json(artifact: str, sha256: bytes, result: Any) -> str:
    """:func:`verification_report` as compact, key-sorted JSON."""
    return json.dumps(verification_report(artifact, sha256, result), sort_keys=True)
