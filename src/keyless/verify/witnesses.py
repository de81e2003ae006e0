"""Witness cosignatures on a bundle's checkpoints (``keyless verify --witness-policy FILE``).

After the bundle verified (its inclusion proof and the log's checkpoint signature against the
trusted root), every checkpoint in its transparency-log entries must satisfy the C2SP tlog-policy:
signed by a log the policy lists and carrying valid cosignatures of enough witnesses
(:class:`keyless.formats.witnesspolicy.WitnessPolicy`). A bundle without a checkpoint of a listed
log fails. Sigstore clients that know nothing of witnesses ignore the extra signature lines, so
witnessed bundles stay readable by them.
"""

from __future__ import annotations

import json
from typing import Any

from keyless.errors import VerificationError
from keyless.formats.witnesspolicy import Witnessed, WitnessPolicy, WitnessPolicyError

__all__ = ["bundle_checkpoints", "check_witness_policy"]


def bundle_checkpoints(bundle: bytes) -> list[str]:
    """The checkpoint envelopes of a bundle's ``tlogEntries`` (protobuf-specs Bundle JSON)."""
    try:
        data: Any = json.loads(bundle)
        entries = data["verificationMaterial"]["tlogEntries"]
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError("the bundle has no transparency log entries") from exc
    found = []
    for entry in entries if isinstance(entries, list) else []:
        envelope = (
            ((entry or {}).get("inclusionProof") or {}).get("checkpoint") or {}
        ).get("envelope")
        if isinstance(envelope, str):
            found.append(envelope)
    return found


def check_witness_policy(bundle: bytes, policy: WitnessPolicy) -> list[Witnessed]:
    """Each checkpoint's verified witnesses; raises if one of them does not meet the policy."""
    envelopes = bundle_checkpoints(bundle)
    if not envelopes:
        raise WitnessPolicyError("the bundle has no checkpoint for the witness policy to check")
    return [policy.verify(envelope) for envelope in envelopes]
